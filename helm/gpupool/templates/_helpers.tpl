{{/* Names ----------------------------------------------------------------------------- */}}

{{- define "gpupool.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name; components append -portal, -scheduler, -migrate (<= 63). */}}
{{- define "gpupool.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gpupool.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels: pass (dict "root" $ "component" "portal") */}}
{{- define "gpupool.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpupool.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "gpupool.labels" -}}
helm.sh/chart: {{ include "gpupool.chart" .root }}
{{ include "gpupool.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: gpupool
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gpupool.image" -}}
{{- $image := .Values.image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{- define "gpupool.portalServiceAccount" -}}
{{- if .Values.serviceAccount.portal.create }}
{{- default (printf "%s-portal" (include "gpupool.fullname" .)) .Values.serviceAccount.portal.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.portal.name }}
{{- end }}
{{- end }}

{{- define "gpupool.schedulerServiceAccount" -}}
{{- if .Values.serviceAccount.scheduler.create }}
{{- default (printf "%s-scheduler" (include "gpupool.fullname" .)) .Values.serviceAccount.scheduler.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.scheduler.name }}
{{- end }}
{{- end }}

{{/* Secrets ---------------------------------------------------------------------------- */}}

{{/* Fails the render, with a message saying what to set, on values that cannot work. */}}
{{- define "gpupool.validate" -}}
{{- $db := .Values.database }}
{{- if and $db.url $db.existingSecret }}
{{- fail "database: set database.url or database.existingSecret, not both" }}
{{- end }}
{{- if not (or $db.url $db.existingSecret) }}
{{- fail "database: gpupool needs an external PostgreSQL database: set database.existingSecret (a Secret whose key database.existingSecretKey holds the URL) or database.url (postgresql+psycopg://user:password@host:5432/gpupool)" }}
{{- end }}
{{- if and .Values.oidc.issuer (not .Values.oidc.clientId) }}
{{- fail "oidc: oidc.issuer is set but oidc.clientId is not" }}
{{- end }}
{{- if and .Values.oidc.issuer (not .Values.secrets.existingSecret) (not .Values.secrets.oidcClientSecret) }}
{{- fail "oidc: oidc.issuer is set: give secrets.oidcClientSecret, or secrets.existingSecret holding it" }}
{{- end }}
{{- if and .Values.portal.autoscaling.enabled (gt (int .Values.portal.autoscaling.minReplicas) (int .Values.portal.autoscaling.maxReplicas)) }}
{{- fail "portal.autoscaling: minReplicas is greater than maxReplicas" }}
{{- end }}
{{- end }}

{{/* The chart's own Secret holds what no existing Secret does: the database URL (database.url),
     the session key and OIDC client secret (unless secrets.existingSecret). */}}
{{- define "gpupool.ownSecret" -}}
{{- if or .Values.database.url (not .Values.secrets.existingSecret) }}true{{ end }}
{{- end }}

{{- define "gpupool.databaseSecretName" -}}
{{- default (include "gpupool.fullname" .) .Values.database.existingSecret }}
{{- end }}

{{- define "gpupool.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
{{- end }}

{{- define "gpupool.appSecretName" -}}
{{- default (include "gpupool.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{- define "gpupool.sessionSecretKey" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.sessionSecretKey }}{{ else }}session-secret{{ end }}
{{- end }}

{{- define "gpupool.oidcClientSecretKey" -}}
{{- if .Values.secrets.existingSecret }}{{ .Values.secrets.oidcClientSecretKey }}{{ else }}oidc-client-secret{{ end }}
{{- end }}

{{/* Pods --------------------------------------------------------------------------------- */}}

{{- define "gpupool.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "gpupool.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The data directory: an emptyDir mounted at /var/lib/gpupool, with GPUPOOL_DATA_DIR a
     directory inside it that gpupool makes itself (it chmods its data dir to 0700, which it
     cannot do to a volume's mount point, owned by root). */}}
{{- define "gpupool.dataDir" -}}/var/lib/gpupool/data{{- end }}

{{- define "gpupool.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.dataSizeLimit }}
{{- end }}

{{- define "gpupool.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/gpupool
{{- end }}

{{/* Environment every gpupool container gets: the ConfigMap, then the secrets. */}}
{{- define "gpupool.env" -}}
- name: GPUPOOL_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "gpupool.databaseSecretName" . }}
      key: {{ include "gpupool.databaseSecretKey" . }}
- name: GPUPOOL_SESSION_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "gpupool.appSecretName" . }}
      key: {{ include "gpupool.sessionSecretKey" . }}
{{- if .Values.oidc.issuer }}
- name: GPUPOOL_OIDC_CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "gpupool.appSecretName" . }}
      key: {{ include "gpupool.oidcClientSecretKey" . }}
{{- end }}
{{- end }}

{{- define "gpupool.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := (first .Values.ingress.hosts).host }}
{{- $tls := false }}
{{- range .Values.ingress.tls }}{{ if has $host .hosts }}{{ $tls = true }}{{ end }}{{ end }}
{{- printf "%s://%s" (ternary "https" "http" $tls) $host }}
{{- end }}
{{- end }}
