"""Validate what gpupool sends to Kubernetes against Kubernetes' own schemas.

Built-in kinds: ``kubernetes-validate``'s OpenAPI schemas, strict (an unknown field fails).
RayJob: the ``v1`` schema of KubeRay's CustomResourceDefinition, with the same strictness:
every field must be one the schema declares. ``rayjob_v1_schema.json.gz`` beside this file is
that schema (``spec.versions[v1].schema.openAPIV3Schema``) taken unchanged from
ray-project/kuberay @ feeaf72 (2026-08-19), ray-operator/config/crd/bases/ray.io_rayjobs.yaml,
Apache-2.0 (also in ../shared/k8s/), as compact JSON.
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
RAYJOB_SCHEMA = Path(__file__).with_name("rayjob_v1_schema.json.gz")


@cache
def rayjob_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(gzip.decompress(RAYJOB_SCHEMA.read_bytes()))
    return schema


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
    if manifest.get("kind") == "RayJob":
        jsonschema.validate(manifest, rayjob_schema())
        unknown = undeclared(manifest, rayjob_schema())
        assert not unknown, f"fields the RayJob schema does not declare: {unknown}"
        return
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
