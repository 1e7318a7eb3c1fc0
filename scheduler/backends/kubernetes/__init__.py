"""gpupool's jobs on Kubernetes: the backend (``backend``) and the objects it makes
(``manifests``)."""

from scheduler.backends.kubernetes.backend import KubernetesBackend, Launch, run_status
from scheduler.backends.kubernetes.manifests import Images, Placement

__all__ = ["Images", "KubernetesBackend", "Launch", "Placement", "run_status"]
