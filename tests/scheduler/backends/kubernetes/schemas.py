"""Validate what gpupool sends to Kubernetes against Kubernetes' own schemas.

Built-in kinds: ``kubernetes-validate``'s OpenAPI schemas, strict (an unknown field fails).
Custom resources: the schema of their CustomResourceDefinition's served version
(``spec.versions[].schema.openAPIV3Schema``), with the same strictness: every field must be one
the schema declares. Each is kept beside this file as compact, gzip'd JSON, descriptions left
out, otherwise unchanged:

- ``rayjob_v1_schema.json.gz``: RayJob ray.io/v1, from ray-project/kuberay @ feeaf72
  (2026-08-19), ray-operator/config/crd/bases/ray.io_rayjobs.yaml, Apache-2.0 (also in
  ../shared/k8s/);
- ``provisioningrequest_v1_schema.json.gz``: ProvisioningRequest autoscaling.x-k8s.io/v1, from
  kubernetes/autoscaler @ 55c37cd5eb550756c5ccc5a89e9068d77797e575 (2026-08-22),
  cluster-autoscaler/apis/config/crd/autoscaling.x-k8s.io_provisioningrequests.yaml,
  Apache-2.0.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

KUBERNETES_VERSION = "1.33.0"
HERE = Path(__file__).parent
CUSTOM_SCHEMAS = {
    "RayJob": HERE / "rayjob_v1_schema.json.gz",
    "ProvisioningRequest": HERE / "provisioningrequest_v1_schema.json.gz",
}


@cache
def custom_schema(kind: str) -> dict[str, Any]:
    """The OpenAPI schema of a custom resource kind gpupool sends."""
    schema: dict[str, Any] = json.loads(gzip.decompress(CUSTOM_SCHEMAS[kind].read_bytes()))
    return schema


def rayjob_schema() -> dict[str, Any]:
    return custom_schema("RayJob")


def undeclared(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths in ``value`` that ``schema`` does not declare (as the API server's strict field
    validation would refuse them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += undeclared(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += undeclared(item, extra, f"{path}.{key}")
            elif properties is not None and key not in ("apiVersion", "kind", "metadata"):
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += undeclared(item, schema["items"], f"{path}[{index}]")
    return found


def validate(manifest: dict[str, Any]) -> None:
    """Raise unless ``manifest`` is a valid object of its kind."""
    kind = manifest.get("kind")
    if kind in CUSTOM_SCHEMAS:
        schema = custom_schema(str(kind))
        jsonschema.validate(manifest, schema)
        unknown = undeclared(manifest, schema)
        assert not unknown, f"fields the {kind} schema does not declare: {unknown}"
        return
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
