"""The Helm chart (helm/gpupool) and the Dockerfile it runs.

The chart is linted and rendered by Helm itself (helm-python-sdk: Helm v4 compiled in, no
binary, no cluster) for the default values and two realistic deployments, every object it makes
is validated against Kubernetes' own schemas (kubernetes-validate, strict: a misspelled key
fails), and what matters for running gpupool safely is asserted: who may call the Kubernetes
API, the security context of every pod, the migration hook, the settings' names, the probes.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import typer
import yaml

from portal.cli import app as cli_app
from portal.health import router as health_router
from portal.settings import PortalSettings
from scheduler.backends.kubernetes.manifests import PROVISIONING_API, RAYJOB_API

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "gpupool"
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES = "1.33.0"
RELEASE, NAMESPACE = "gp", "gpupool"
FULLNAME = f"{RELEASE}-gpupool"
DATABASE_URL = "postgresql+psycopg://gpupool:s3cret@postgres.db.svc:5432/gpupool"

Manifest = dict[str, Any]

# The least a release needs: a database.
MINIMAL: dict[str, Any] = {"database": {"url": DATABASE_URL}}
# A national deployment: secrets made by the operator, public behind TLS, autoscaled, monitored.
PRODUCTION: dict[str, Any] = {
    "image": {"repository": "registry.example.org/gpupool/gpupool", "tag": "0.1.0"},
    "database": {"existingSecret": "gpupool-database", "existingSecretKey": "url"},
    "secrets": {"existingSecret": "gpupool-secrets"},
    "oidc": {"issuer": "https://login.example.org/realms/research", "clientId": "gpupool"},
    "config": {"extra": {"GPUPOOL_CYCLE_SECONDS": "2", "GPUPOOL_MAX_TIME_LIMIT_HOURS": 168}},
    "portal": {
        "replicas": 3,
        "workers": 4,
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "portal"}},
            }
        ],
    },
    "scheduler": {"replicas": 2, "kubeconfig": {"existingSecret": "gpupool-kubeconfig"}},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "100m"},
        "hosts": [{"host": "gpupool.example.org", "paths": [{"path": "/", "pathType": "Prefix"}]}],
        "tls": [{"secretName": "gpupool-tls", "hosts": ["gpupool.example.org"]}],
    },
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "rbac": {"provisioningRequests": True},
}
# A small site: the chart keeps the database URL, no ingress, one portal replica.
SMALL: dict[str, Any] = {
    "database": {"url": DATABASE_URL},
    "secrets": {"sessionSecret": "x" * 48},
    "portal": {"replicas": 1, "workers": 1, "podDisruptionBudget": {"enabled": False}},
    "ingress": {"enabled": False},
    "config": {"publicUrl": "http://gpupool.lab.internal"},
}
VALUE_SETS = {"minimal": MINIMAL, "production": PRODUCTION, "small": SMALL}

# What scheduler/backends/kubernetes calls: (API group, resource) -> verbs.
SCHEDULER_RULES = {
    ("", "namespaces"): {"create"},
    ("", "resourcequotas"): {"create", "update"},
    ("networking.k8s.io", "networkpolicies"): {"create"},
    ("scheduling.k8s.io", "priorityclasses"): {"create"},
    ("batch", "jobs"): {"create", "list", "watch", "patch", "delete"},
    ("ray.io", "rayjobs"): {"create", "list", "watch", "patch", "delete"},
    ("", "services"): {"create"},
    ("", "pods"): {"list", "watch"},
    ("", "pods/log"): {"get"},
    ("", "nodes"): {"list"},
}
# What it calls only on a cloud burst target (``provisioning_class``): granted by
# rbac.provisioningRequests, as the ProvisioningRequest CRD may not be installed elsewhere.
PROVISIONING_RULES = {
    ("autoscaling.x-k8s.io", "provisioningrequests"): {"create", "list", "watch", "delete"},
    ("", "podtemplates"): {"create", "delete"},
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any]) -> list[Manifest]:
    """The objects a release with ``values`` would make, hooks included, NOTES left out."""
    files = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    manifests: list[Manifest] = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


@pytest.fixture(scope="module", params=list(VALUE_SETS))
def release(request: pytest.FixtureRequest, chart: helm.Chart) -> tuple[str, list[Manifest]]:
    name: str = request.param
    return name, render(chart, VALUE_SETS[name])


def one(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m["kind"] for m in manifests)


def pod_specs(manifests: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield manifest["metadata"]["name"], manifest["spec"]["template"]["spec"]


def env_of(container: Manifest) -> dict[str, Manifest]:
    return {entry["name"]: entry for entry in container.get("env", [])}


# -- helm lint and values.schema.json --------------------------------------------------------


@pytest.mark.parametrize("values", [None, MINIMAL, PRODUCTION, SMALL], ids=["default", *VALUE_SETS])
def test_lint_is_clean(values: dict[str, Any] | None) -> None:
    """Nothing but the one INFO Helm always gives a chart with no icon (gpupool has none).
    With the defaults, the database's `fail` is only logged: Helm's lint mode tolerates it."""
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
    assert report["errors"] == []
    assert [m["error"] for m in report["messages"]] == ["icon is recommended"]


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"portal": {"replicas": "three"}}, "/portal/replicas"),
        ({"portal": {"workers": 0}}, "/portal/workers"),
        ({"portal": {"replica": 3}}, "replica"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"image": {"tag": "latest"}}, "/image/tag"),
        ({"service": {"type": "Ingress"}}, "/service/type"),
        ({"database": {"url": "sqlite:///gpupool.db"}}, "/database/url"),
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
        ({"config": {"extra": {"CYCLE_SECONDS": "2"}}}, "CYCLE_SECONDS"),
        ({"secrets": {"sessionSecret": "short"}}, "/secrets/sessionSecret"),
        ({"ingress": {"tls": [{"secretName": "t"}]}}, "/ingress/tls/0"),
    ],
)
def test_schema_refuses_bad_values(chart: helm.Chart, values: dict[str, Any], where: str) -> None:
    values = {**MINIMAL, **values}
    with pytest.raises(helm.HelmValuesError, match=re.escape(where)):
        chart.validate_schema(chart.merge_values(values))
    report = helm.lint(CHART, values, namespace=NAMESPACE)
    assert report["errors"], "helm lint accepted bad values"
    assert any(where in error for error in report["errors"])


def test_schema_is_valid_and_the_defaults_meet_it(chart: helm.Chart) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(chart.values, schema)
    for values in VALUE_SETS.values():
        chart.validate_schema(chart.merge_values(values))


def test_app_version_is_the_project_version(chart: helm.Chart) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart.metadata["appVersion"] == project["version"]
    assert chart.metadata["apiVersion"] == "v2"


# -- rendering: the database is required ------------------------------------------------------


def test_render_without_a_database_fails_clearly(chart: helm.Chart) -> None:
    with pytest.raises(
        helm.HelmRenderError, match=r"set database\.existingSecret .* database\.url"
    ):
        render(chart, {})


def test_render_with_two_databases_fails(chart: helm.Chart) -> None:
    both = {"database": {"url": DATABASE_URL, "existingSecret": "db"}}
    with pytest.raises(helm.HelmRenderError, match="not both"):
        render(chart, both)


def test_oidc_without_a_client_secret_fails(chart: helm.Chart) -> None:
    oidc = {**MINIMAL, "oidc": {"issuer": "https://idp.example.org", "clientId": "gpupool"}}
    with pytest.raises(helm.HelmRenderError, match="oidcClientSecret"):
        render(chart, oidc)


# -- every object is valid Kubernetes ----------------------------------------------------------


def test_every_manifest_is_valid_kubernetes(release: tuple[str, list[Manifest]]) -> None:
    _, manifests = release
    assert manifests
    for manifest in manifests:
        if manifest["kind"] == "ServiceMonitor":
            check_service_monitor(manifest)
            continue
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def check_service_monitor(monitor: Manifest) -> None:
    """A CRD kubernetes-validate has no schema for: the fields Prometheus Operator reads."""
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}
    assert spec["selector"]["matchLabels"]["app.kubernetes.io/component"] == "portal"
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["path"] == "/metrics"
        for key in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint[key])


def test_what_each_release_makes(chart: helm.Chart) -> None:
    assert kinds(render(chart, MINIMAL)) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "Secret",  # the chart's: database URL, session key
        "Secret",  # the migration hook's: database URL
        "Service",
        "ServiceAccount",
        "ServiceAccount",
    ]
    production = render(chart, PRODUCTION)
    assert "Secret" not in kinds(production)  # the operator made them
    for kind in ("Ingress", "HorizontalPodAutoscaler", "ServiceMonitor", "PodDisruptionBudget"):
        assert kind in kinds(production)
    small = kinds(render(chart, SMALL))
    for kind in ("Ingress", "HorizontalPodAutoscaler", "ServiceMonitor", "PodDisruptionBudget"):
        assert kind not in small


# -- security ----------------------------------------------------------------------------------


def test_every_pod_runs_unprivileged(release: tuple[str, list[Manifest]]) -> None:
    _, manifests = release
    specs = dict(pod_specs(manifests))
    assert set(specs) == {f"{FULLNAME}-portal", f"{FULLNAME}-scheduler", f"{FULLNAME}-migrate"}
    for name, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        mounts_tmp = False
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context.get("privileged", False) is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"], name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            mounts_tmp = mounts.get("/tmp") == "tmp"
            # the data dir is written: a volume (a directory in it: gpupool chmods it 0700)
            assert mounts["/var/lib/gpupool"] == "data", name
        assert mounts_tmp, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"]
        assert "emptyDir" in volumes["data"]


def test_only_the_scheduler_gets_an_api_token(release: tuple[str, list[Manifest]]) -> None:
    _, manifests = release
    portal_account = one(manifests, "ServiceAccount", f"{FULLNAME}-portal")
    assert portal_account["automountServiceAccountToken"] is False
    specs = dict(pod_specs(manifests))
    portal = specs[f"{FULLNAME}-portal"]
    assert portal["serviceAccountName"] == f"{FULLNAME}-portal"
    assert portal["automountServiceAccountToken"] is False
    assert specs[f"{FULLNAME}-migrate"]["automountServiceAccountToken"] is False
    scheduler = specs[f"{FULLNAME}-scheduler"]
    assert scheduler["serviceAccountName"] == f"{FULLNAME}-scheduler"
    assert scheduler["automountServiceAccountToken"] is True
    # the binding names the scheduler's account, and no binding names the portal's
    binding = one(manifests, "ClusterRoleBinding", f"{FULLNAME}-scheduler")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{FULLNAME}-scheduler", "namespace": NAMESPACE}
    ]
    assert binding["roleRef"]["name"] == f"{FULLNAME}-scheduler"
    assert not [m for m in manifests if m["kind"] in ("Role", "RoleBinding")]


def rules(manifests: list[Manifest]) -> dict[tuple[str, str], set[str]]:
    role = one(manifests, "ClusterRole", f"{FULLNAME}-scheduler")
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}  # no resourceNames, no URLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def test_the_cluster_role_grants_exactly_what_the_backend_calls(chart: helm.Chart) -> None:
    granted = rules(render(chart, MINIMAL))
    assert granted == SCHEDULER_RULES
    with_burst = rules(render(chart, PRODUCTION))
    assert with_burst == SCHEDULER_RULES | PROVISIONING_RULES
    for (group, resource), verbs in with_burst.items():
        assert "*" not in (group, resource, *verbs)
        assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}


API_GROUPS = {"core": "", "batch": "batch", "networking": "networking.k8s.io"}
API_GROUPS |= {"scheduling": "scheduling.k8s.io"}
VERBS = {"create": "create", "list": "list", "read": "get", "replace": "update"}
VERBS |= {"patch": "patch", "delete": "delete"}


def backend_calls() -> dict[tuple[str, str], set[str]]:
    """(API group, resource) -> verbs of every Kubernetes API call the backend's source makes
    (``self.core.create_namespace(...)`` -> ("", "namespaces"): {"create"})."""
    source = (ROOT / "scheduler" / "backends" / "kubernetes" / "backend.py").read_text()
    calls: dict[tuple[str, str], set[str]] = {}
    for api, method, custom in re.findall(
        r"self\.(core|batch|networking|scheduling|custom)\.(\w+)(?:[(,]\s*\*?(\w*))?", source
    ):
        verb, _, kind = method.partition("_")
        kind = kind.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
        if api == "custom":  # named by the API it is called with: *RAYJOB_API, *_rayjobs(...)
            group, _, resource = CUSTOM_APIS[custom]
        else:
            group = API_GROUPS[api]
            resource = "pods/log" if kind == "pod_log" else plural(kind.replace("_", ""))
        calls.setdefault((group, resource), set()).add(VERBS[verb])
    # what the backend lists for its mirror (``_mirror``), the mirror also watches
    mirrored = source[source.index("def _mirror(") : source.index("def _mirrored(")]
    for api, method, custom in re.findall(
        r"self\.(core|batch|custom)\.(list_\w+)\(\s*\*?(\w*)", mirrored
    ):
        kind = method.removeprefix("list_").removesuffix("_for_all_namespaces")
        key = CUSTOM_APIS[custom][::2] if api == "custom" else (API_GROUPS[api], plural(kind))
        calls.setdefault(key, set()).add("watch")
    return calls


CUSTOM_APIS = {
    "RAYJOB_API": RAYJOB_API,
    "_rayjobs": RAYJOB_API,
    "PROVISIONING_API": PROVISIONING_API,
    "_provreqs": PROVISIONING_API,
}
"""The custom objects the backend calls, by the API tuple (or its helper) a call is given."""


def plural(kind: str) -> str:
    if kind.endswith("y"):
        return kind[:-1] + "ies"
    return kind + ("es" if kind.endswith("s") else "s")


def test_the_cluster_role_matches_the_backend_source(chart: helm.Chart) -> None:
    """When the backend starts calling something new, the chart must grant it (and only it);
    what it calls for cloud burst only when rbac.provisioningRequests is set."""
    granted, called = rules(render(chart, PRODUCTION)), backend_calls()
    assert {key: called[key] for key in PROVISIONING_RULES} == PROVISIONING_RULES
    assert rules(render(chart, MINIMAL)) == {
        key: verbs for key, verbs in granted.items() if key not in PROVISIONING_RULES
    }
    missing = {key: verbs - granted.get(key, set()) for key, verbs in called.items()}
    missing = {key: verbs for key, verbs in missing.items() if verbs}
    assert not missing, (
        f"scheduler/backends/kubernetes/backend.py calls {missing}, which the ClusterRole in "
        "helm/gpupool/templates/rbac.yaml does not grant: add them there (and to this file's "
        "SCHEDULER_RULES)"
    )
    unused = {key: verbs - called.get(key, set()) for key, verbs in granted.items()}
    assert not {key: verbs for key, verbs in unused.items() if verbs}, "granted, never called"


def test_no_rbac_when_asked(chart: helm.Chart) -> None:
    manifests = render(chart, {**MINIMAL, "rbac": {"create": False}})
    assert not {"ClusterRole", "ClusterRoleBinding"} & set(kinds(manifests))


# -- the migration hook ------------------------------------------------------------------------


def test_the_migration_job_is_a_pre_install_and_pre_upgrade_hook(chart: helm.Chart) -> None:
    manifests = render(chart, MINIMAL)
    job = one(manifests, "Job", f"{FULLNAME}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"].split(",")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["init"]
    assert "init" in command_names()
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # hooks run before the release's objects exist: its database URL is a hook Secret made first
    url = env_of(container)["GPUPOOL_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    hook_secret = one(manifests, "Secret", url["name"])
    hook = hook_secret["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(hook["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert url["key"] in hook_secret["data"]
    # with the operator's Secret, that one (it exists before the release)
    production = one(render(chart, PRODUCTION), "Job", f"{FULLNAME}-migrate")
    ref = env_of(production["spec"]["template"]["spec"]["containers"][0])
    assert ref["GPUPOOL_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "gpupool-database",
        "key": "url",
    }


# -- settings, probes, metrics -----------------------------------------------------------------


def command_names() -> set[str]:
    group = typer.main.get_command(cli_app)
    return set(getattr(group, "commands", {}))


def serve_options() -> set[str]:
    group = typer.main.get_command(cli_app)
    serve = group.commands["serve"]  # type: ignore[attr-defined]
    return {option for param in serve.params for option in param.opts}


def test_every_variable_is_a_gpupool_setting(release: tuple[str, list[Manifest]]) -> None:
    _, manifests = release
    settings = set(PortalSettings.model_fields)
    names = set(one(manifests, "ConfigMap", FULLNAME)["data"])
    for _, spec in pod_specs(manifests):
        for container in spec["containers"]:
            names |= set(env_of(container))
    gpupool = {name for name in names if name.startswith("GPUPOOL_")}
    assert names - gpupool <= {"KUBECONFIG"}
    unknown = {name for name in gpupool if name.removeprefix("GPUPOOL_").lower() not in settings}
    assert not unknown, f"not gpupool settings: {unknown}"


def test_the_portal_runs_no_scheduler_and_the_scheduler_does(
    release: tuple[str, list[Manifest]],
) -> None:
    name, manifests = release
    values = VALUE_SETS[name]
    specs = dict(pod_specs(manifests))
    portal = env_of(specs[f"{FULLNAME}-portal"]["containers"][0])
    scheduler = env_of(specs[f"{FULLNAME}-scheduler"]["containers"][0])
    assert portal["GPUPOOL_RUN_SCHEDULER"]["value"] == "false"
    assert scheduler["GPUPOOL_RUN_SCHEDULER"]["value"] == "true"
    assert scheduler["GPUPOOL_WORKERS"]["value"] == "1"
    workers = values.get("portal", {}).get("workers", 2)
    assert portal["GPUPOOL_WORKERS"]["value"] == str(workers)
    for env in (portal, scheduler):
        assert "secretKeyRef" in env["GPUPOOL_DATABASE_URL"]["valueFrom"]
        assert "secretKeyRef" in env["GPUPOOL_SESSION_SECRET"]["valueFrom"]
    config = one(manifests, "ConfigMap", FULLNAME)["data"]
    assert config["GPUPOOL_HOST"] == "0.0.0.0"
    assert config["GPUPOOL_DATA_DIR"].startswith("/var/lib/gpupool/")
    assert not any("secret" in key.lower() or "database" in key.lower() for key in config)


def test_replicas(chart: helm.Chart) -> None:
    production = render(chart, PRODUCTION)
    portal = one(production, "Deployment", f"{FULLNAME}-portal")
    assert "replicas" not in portal["spec"]  # the autoscaler owns it
    autoscaler = one(production, "HorizontalPodAutoscaler", f"{FULLNAME}-portal")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == f"{FULLNAME}-portal"
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (3, 12)
    assert one(production, "Deployment", f"{FULLNAME}-scheduler")["spec"]["replicas"] == 2
    fixed = render(chart, {**PRODUCTION, "portal": {"replicas": 3}})
    assert one(fixed, "Deployment", f"{FULLNAME}-portal")["spec"]["replicas"] == 3
    budget = one(production, "PodDisruptionBudget", f"{FULLNAME}-portal")
    labels = portal["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    small = render(chart, SMALL)
    assert one(small, "Deployment", f"{FULLNAME}-scheduler")["spec"]["replicas"] == 1


def test_probes_ask_real_paths(release: tuple[str, list[Manifest]]) -> None:
    _, manifests = release
    paths = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    specs = dict(pod_specs(manifests))
    for name in (f"{FULLNAME}-portal", f"{FULLNAME}-scheduler"):
        container = specs[name]["containers"][0]
        ports = {port["name"] for port in container["ports"]}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] in paths, (name, probe)
            assert get["port"] in ports, (name, probe)
    # a portal-only process's /readyz checks its database and waits for no scheduler
    assert specs[f"{FULLNAME}-portal"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == (
        "/readyz"
    )
    scheduler = specs[f"{FULLNAME}-scheduler"]["containers"][0]
    assert scheduler["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_metrics_are_scraped_one_way(chart: helm.Chart) -> None:
    assert "/metrics" in {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    minimal = render(chart, MINIMAL)
    annotations = one(minimal, "Deployment", f"{FULLNAME}-portal")["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert "ServiceMonitor" not in kinds(minimal)
    production = render(chart, PRODUCTION)
    portal = one(production, "Deployment", f"{FULLNAME}-portal")
    assert "prometheus.io/scrape" not in portal["spec"]["template"]["metadata"]["annotations"]
    monitor = one(production, "ServiceMonitor", FULLNAME)
    service = one(production, "Service", FULLNAME)
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )


def test_the_service_and_ingress_reach_the_portal(chart: helm.Chart) -> None:
    production = render(chart, PRODUCTION)
    service = one(production, "Service", FULLNAME)
    portal = one(production, "Deployment", f"{FULLNAME}-portal")
    scheduler = one(production, "Deployment", f"{FULLNAME}-scheduler")
    selector = service["spec"]["selector"].items()
    assert selector <= portal["spec"]["template"]["metadata"]["labels"].items()
    assert not selector <= scheduler["spec"]["template"]["metadata"]["labels"].items()
    ingress = one(production, "Ingress", FULLNAME)
    assert ingress["spec"]["tls"] == [
        {"secretName": "gpupool-tls", "hosts": ["gpupool.example.org"]}
    ]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": FULLNAME, "port": {"number": service["spec"]["ports"][0]["port"]}}
    config = one(production, "ConfigMap", FULLNAME)["data"]
    assert config["GPUPOOL_PUBLIC_URL"] == "https://gpupool.example.org"
    assert config["GPUPOOL_OIDC_ISSUER"] == "https://login.example.org/realms/research"
    assert config["GPUPOOL_CYCLE_SECONDS"] == "2"
    assert config["GPUPOOL_MAX_TIME_LIMIT_HOURS"] == "168"


def test_secrets_come_from_where_the_values_say(chart: helm.Chart) -> None:
    small = render(chart, SMALL)
    secret = one(small, "Secret", FULLNAME)
    assert set(secret["data"]) == {"database-url", "session-secret"}
    assert base64.b64decode(secret["data"]["session-secret"]).decode() == "x" * 48
    assert base64.b64decode(secret["data"]["database-url"]).decode() == DATABASE_URL
    # none given: one is generated (and kept across upgrades: `lookup` finds the Secret)
    generated = one(render(chart, MINIMAL), "Secret", FULLNAME)["data"]["session-secret"]
    assert re.fullmatch(r"[A-Za-z0-9]{48}", base64.b64decode(generated).decode())
    production = render(chart, PRODUCTION)
    scheduler = one(production, "Deployment", f"{FULLNAME}-scheduler")
    env = env_of(scheduler["spec"]["template"]["spec"]["containers"][0])
    assert env["GPUPOOL_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "gpupool-database",
        "key": "url",
    }
    assert env["GPUPOOL_SESSION_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "gpupool-secrets"
    assert env["GPUPOOL_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "gpupool-secrets",
        "key": "oidc-client-secret",
    }
    assert env["KUBECONFIG"]["value"] == "/etc/gpupool/kube/config"
    # the database URL never appears in the clear
    for manifest in small:
        if manifest["kind"] != "Secret":
            assert "s3cret" not in json.dumps(manifest)


# -- the Dockerfile ----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_the_dockerfile_builds_a_small_unprivileged_image(chart: helm.Chart) -> None:
    instructions = dockerfile()
    args = dict(
        rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest
    )
    bases = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])
            bases.append(image)
    assert bases
    assert all(re.fullmatch(r"python:3\.11-slim[-\w.]*(@sha256:\w+)?", b) for b in bases)
    assert len(bases) >= 2  # multi-stage: the build's tools stay out of the runtime image
    assert not any(keyword == "ADD" for keyword, _ in instructions)  # COPY only, no URLs
    # the last stage's user: numeric, not root, the one the chart runs as
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert int(uid) == chart.values["securityContext"]["runAsUser"]
    # installs the wheel, never the dev extras
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "pip wheel" in runs
    assert ".whl" in runs
    assert "[dev]" not in runs
    assert "-e " not in runs
    # runs gpupool; serve's options are real ones
    entrypoint = json.loads(next(r for k, r in instructions if k == "ENTRYPOINT"))
    command = json.loads(next(r for k, r in instructions if k == "CMD"))
    assert entrypoint == ["gpupool"]
    assert command[0] == "serve"
    assert "serve" in command_names()
    assert {arg for arg in command[1:] if arg.startswith("--")} <= serve_options()
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    assert "GPUPOOL_DATA_DIR=/var/lib/gpupool" in shlex.split(env)
    exposed = [rest for keyword, rest in instructions if keyword == "EXPOSE"]
    assert exposed == [str(chart.values["containerPort"])]
    # a HEALTHCHECK for plain docker: liveness only, in exec form (the image needs no shell)
    healthcheck = next(rest for keyword, rest in instructions if keyword == "HEALTHCHECK")
    assert "/healthz" in healthcheck
    assert "CMD [" in healthcheck
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignored[0] == "**"  # everything out, then only what the build copies back in
    assert "!.venv" not in ignored
