"""Which backend runs each cluster: built from the clusters the books declare."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from quotas.flavors import Flavor
from quotas.inventory import BackendKind, ClusterSpec, Inventory, SiteKind
from scheduler.backends.kubernetes import KubernetesBackend, Placement
from scheduler.backends.registry import build_backends

FLAVORS = {
    "h100-80g": Flavor("h100-80g", 80, 1.0),
    "rngd-48g": Flavor("rngd-48g", 48, 0.5, kubernetes_resource="furiosa.ai/rngd"),
}


def kube_cluster(name: str, context: str) -> ClusterSpec:
    return ClusterSpec(
        name,
        BackendKind.KUBERNETES,
        SiteKind.NATIONAL,
        (Inventory("h100-80g", 2, 8), Inventory("rngd-48g", 4, 4)),
        address=context,
    )


def write_kubeconfig(path: Path, *contexts: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": c, "cluster": {"server": f"https://{c}.example:6443"}}
                    for c in contexts
                ],
                "users": [{"name": "gpupool", "user": {"token": "not-a-real-token"}}],
                "contexts": [
                    {"name": c, "context": {"cluster": c, "user": "gpupool"}} for c in contexts
                ],
                "current-context": contexts[0],
            }
        )
    )


def test_each_kubernetes_cluster_gets_a_backend_for_its_context_with_its_flavors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_kubeconfig(tmp_path / "config", "seoul", "daejeon")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    backends = build_backends(
        [kube_cluster("seoul-k8s", "seoul"), kube_cluster("daejeon-k8s", "daejeon")], FLAVORS
    )
    seoul, daejeon = backends["seoul-k8s"], backends["daejeon-k8s"]
    assert isinstance(seoul, KubernetesBackend)
    assert isinstance(daejeon, KubernetesBackend)
    assert seoul.api.configuration.host == "https://seoul.example:6443"
    assert daejeon.api.configuration.host == "https://daejeon.example:6443"
    assert seoul.placements["rngd-48g"] == Placement.of("rngd-48g", "furiosa.ai/rngd")
    assert seoul.placements["h100-80g"].resource == "nvidia.com/gpu"


def test_a_cluster_whose_context_is_missing_gets_no_backend_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    write_kubeconfig(tmp_path / "config", "seoul")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    backends = build_backends([kube_cluster("busan-k8s", "busan")], FLAVORS)
    assert backends == {}
    assert "cluster busan-k8s: no Kubernetes backend" in caplog.text


def test_a_burst_target_s_backend_asks_its_provisioning_class_for_nodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_kubeconfig(tmp_path / "config", "seoul", "tokyo")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    atomic = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"
    target = ClusterSpec(
        "cloud-tokyo",
        BackendKind.KUBERNETES,
        SiteKind.FOREIGN_CLOUD,
        (Inventory("h100-80g", 4, 8),),
        address="tokyo",
        provisioning_class=atomic,
    )
    backends = build_backends([kube_cluster("seoul-k8s", "seoul"), target], FLAVORS)
    national, cloud = backends["seoul-k8s"], backends["cloud-tokyo"]
    assert isinstance(national, KubernetesBackend)
    assert isinstance(cloud, KubernetesBackend)
    assert national.provisioning_class is None
    assert cloud.provisioning_class == atomic
