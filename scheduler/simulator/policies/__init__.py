"""The policies a simulation compares: gpupool's own, and baselines from their published
definitions (``POLICIES`` by name)."""

from __future__ import annotations

from scheduler.simulator.policies.fifo import FifoPolicy
from scheduler.simulator.policies.gavel import GavelPolicy
from scheduler.simulator.policies.gpupool import GpupoolPolicy
from scheduler.simulator.policies.kueue import KueuePolicy
from scheduler.simulator.policies.slurm import SlurmPolicy
from scheduler.simulator.world import Policy

POLICIES: dict[str, type[Policy]] = {
    policy.name: policy
    for policy in (GpupoolPolicy, FifoPolicy, SlurmPolicy, KueuePolicy, GavelPolicy)
}
