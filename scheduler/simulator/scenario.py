"""What a simulation runs: the trace's jobs, the clusters, the catalogue, the account tree and
the credits, and the settings of the simulated loop, with every assumption written down.

Clusters come inline (``v100-32g:128,a100-80g:128,h100-80g:128``: one national cluster of 8-GPU
nodes; ``flavor:gpus:per_node`` for other node sizes) or from a JSON or TOML file. The account
tree is, by default, one program with one organization and one project per tenant, all of equal
share, each awarded more credits than it can spend (no budget binds); a file gives programs,
organizations, projects, shares, budgets, guarantees and the credits each project is awarded.
A what-if file changes shares, budgets, credits, rates or clusters of a scenario
(``changed``).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.admission import SiteKind
from quotas.demo import FLAVORS, RATES
from quotas.errors import InvalidInput
from quotas.flavors import Flavor, RateCard
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.quantities import Credits, Rate
from scheduler.simulator.trace import TraceJob

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)
"""Second 0 of every simulation, in the books' time (any fixed instant would do)."""
POOL = "pool"
PERIOD = "simulation"
UNLIMITED = Credits.of(10**12)
"""The credits a project is awarded when the tree sets none: more than any trace can spend."""
GPUS_PER_NODE = 8


@dataclass(frozen=True)
class SimSettings:
    """The simulated loop. The production scheduler's rules, at a coarser grain where the
    production grain only costs time (each such choice is an assumption in the output)."""

    cycle_seconds: int = 60
    """The scheduler's cycle (production pauses 2 s): decisions happen on this grid."""
    charge_interval_seconds: int = 3600
    """How often running jobs are charged (production: every 60 s)."""
    decide_every_seconds: int = 600
    """A queue whose inputs did not change is decided again this often (production: 30 s, to
    keep estimated starts fresh, which a simulation does not show)."""
    preempt_after_seconds: int = 1800
    min_runtime_seconds: int = 600
    half_life_seconds: float = 7 * 24 * 3600
    time_limit_factor: float = 1.5
    """A job's time limit: its runtime on the slowest flavor it can run on, times this."""
    preemptible: bool = True
    """Whether trace jobs may be preempted when they run on borrowed capacity."""
    sample_seconds: int = 600
    """How often usage, demand and entitlement are sampled for fairness and utilisation."""

    def assumptions(self) -> list[str]:
        return [
            f"the scheduler decides every {self.cycle_seconds} s (production: every 2 s), "
            f"again at least every {self.decide_every_seconds} s with nothing changed "
            "(production: 30 s), and charges running jobs every "
            f"{self.charge_interval_seconds} s (production: 60 s)",
            f"a job's time limit is {self.time_limit_factor:g} x its runtime on the slowest "
            "flavor it can run on, rounded up to the minute",
            "a preempted or migrated job keeps its progress (it checkpoints) and resumes "
            "where it stopped; trace jobs are "
            + ("preemptible" if self.preemptible else "not preemptible"),
            "jobs are packed onto nodes as gpupool's snapshot packs them (jobs.capacity): "
            "best fit for jobs of up to one node, whole nodes for larger ones",
        ]


@dataclass(frozen=True)
class Scenario:
    """One simulation's whole input."""

    jobs: tuple[TraceJob, ...]
    clusters: tuple[ClusterSpec, ...]
    flavors: Mapping[str, Flavor]
    rate_card: RateCard
    tree: AccountTree
    projects: Mapping[str, str]
    """Tenant -> the project its jobs run under."""
    credits: Mapping[str, Credits]
    """Project -> credits awarded to it for the simulated period."""
    settings: SimSettings = field(default_factory=SimSettings)
    assumptions: tuple[str, ...] = ()

    @property
    def capacity(self) -> dict[str, int]:
        """GPUs per flavor over every cluster."""
        total: dict[str, int] = {}
        for cluster in self.clusters:
            for item in cluster.inventory:
                total[item.flavor] = total.get(item.flavor, 0) + item.gpus
        return total

    @property
    def gpus(self) -> int:
        return sum(self.capacity.values())

    def acceptable(self, job: TraceJob) -> tuple[str, ...]:
        """The flavors of this pool ``job`` can run on, by name."""
        present = self.capacity
        named = job.flavors or tuple(
            name for name, flavor in self.flavors.items() if not flavor.named_only
        )
        return tuple(name for name in named if name in present and name in job.speed)

    def time_limit(self, job: TraceJob) -> int:
        flavors = self.acceptable(job) or tuple(job.speed)
        slowest = max(job.runtime_on(name) for name in flavors) if flavors else job.duration_s
        return max(60, 60 * math.ceil(slowest * self.settings.time_limit_factor / 60))


def catalogue(names: Iterable[str], extra: Sequence[Flavor] = ()) -> dict[str, Flavor]:
    """The demo catalogue's flavors (and ``extra`` ones) of the names given."""
    known = {flavor.name: flavor for flavor in (*FLAVORS, *extra)}
    found: dict[str, Flavor] = {}
    for name in names:
        if name not in known:
            raise InvalidInput(
                f"no flavor {name!r}: the catalogue has {', '.join(sorted(known))} "
                "(a cluster file may define others under 'flavors')"
            )
        found[name] = known[name]
    return found


def rate_card(flavors: Iterable[str], rates: Mapping[str, Rate] | None = None) -> RateCard:
    given = {**RATES, **(rates or {})}
    missing = [name for name in flavors if name not in given]
    if missing:
        raise InvalidInput(f"no exchange rate for {', '.join(missing)}")
    return RateCard(1, EPOCH, {name: given[name] for name in flavors})


def parse_clusters(text: str) -> tuple[tuple[ClusterSpec, ...], list[Flavor], dict[str, Rate]]:
    """Clusters from inline text or a file's path; also any flavors and rates the file adds."""
    path = Path(text)
    if path.suffix in (".json", ".toml") or path.exists():
        return _clusters_file(path)
    inventory: list[Inventory] = []
    for part in filter(None, (item.strip() for item in text.split(","))):
        fields = part.split(":")
        if len(fields) not in (2, 3):
            raise InvalidInput(f"{part!r}: write a flavor's GPUs as flavor:gpus[:per_node]")
        flavor = fields[0].strip()
        try:
            gpus = int(fields[1])
            per_node = int(fields[2]) if len(fields) == 3 else min(GPUS_PER_NODE, gpus)
        except ValueError:
            raise InvalidInput(f"{part!r}: GPUs must be whole numbers") from None
        if gpus <= 0 or per_node <= 0 or gpus % per_node:
            raise InvalidInput(f"{part!r}: {gpus} GPUs do not make whole nodes of {per_node}")
        inventory.append(Inventory(flavor, gpus // per_node, per_node))
    if not inventory:
        raise InvalidInput("the cluster has no GPUs: give flavor:gpus[,flavor:gpus...]")
    return (_cluster("national", inventory),), [], {}


def _cluster(name: str, inventory: Sequence[Inventory], site: str = "national") -> ClusterSpec:
    try:
        kind = SiteKind(site)
    except ValueError:
        raise InvalidInput(f"cluster {name}: no site kind {site!r}") from None
    backend = BackendKind.KUBERNETES if kind is SiteKind.NATIONAL else BackendKind.CLOUD
    return ClusterSpec(name, backend, kind, tuple(inventory))


def read_structured(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise InvalidInput(f"{path} is not valid {path.suffix[1:] or 'JSON'}: {error}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold an object")
    return data


def _clusters_file(path: Path) -> tuple[tuple[ClusterSpec, ...], list[Flavor], dict[str, Rate]]:
    data = read_structured(path)
    flavors = [
        Flavor(str(f["name"]), int(f["memory_gb"]), float(f["relative_throughput"]))
        for f in data.get("flavors", [])
    ]
    rates = {str(name): Rate.of(str(value)) for name, value in data.get("rates", {}).items()}
    clusters: list[ClusterSpec] = []
    for entry in data.get("clusters", []):
        try:
            inventory = [
                Inventory(str(i["flavor"]), int(i["nodes"]), int(i.get("gpus_per_node", 8)))
                for i in entry["inventory"]
            ]
            clusters.append(_cluster(str(entry["name"]), inventory, entry.get("site", "national")))
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInput(
                f"{path}: a cluster needs a name and an inventory: {error}"
            ) from None
    if not clusters:
        raise InvalidInput(f"{path} names no clusters")
    return tuple(clusters), flavors, rates


def default_tree(tenants: Sequence[str]) -> tuple[AccountTree, dict[str, str]]:
    """Each tenant a program of share 1 with one organization and one project: tenants stand
    to each other as programs do in a national pool, each with its own credits."""
    accounts = [Account(POOL, AccountKind.POOL)]
    projects: dict[str, str] = {}
    for tenant in tenants:
        project = _name(tenant)
        accounts.append(Account(f"{project}-program", AccountKind.PROGRAM, POOL))
        accounts.append(Account(f"{project}-org", AccountKind.ORGANIZATION, f"{project}-program"))
        accounts.append(Account(project, AccountKind.PROJECT, f"{project}-org"))
        projects[tenant] = project
    return AccountTree({a.name: a for a in accounts}), projects


def _name(tenant: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in tenant.lower()).strip("-")
    return cleaned[:50] or "tenant"


def tree_file(
    path: Path, tenants: Sequence[str]
) -> tuple[AccountTree, dict[str, str], dict[str, Credits]]:
    """A tree from a file: ``accounts`` (name, kind, parent, share, budget, guaranteed_gpus,
    borrowing_limit_gpus), ``tenants`` (tenant -> project; a tenant named like a project runs
    there without one) and ``credits`` (project -> credits awarded; unlimited if missing)."""
    data = read_structured(path)
    accounts = [Account(POOL, AccountKind.POOL)]
    for entry in data.get("accounts", []):
        try:
            budget = entry.get("budget")
            accounts.append(
                Account(
                    str(entry["name"]),
                    AccountKind(entry["kind"]),
                    str(entry.get("parent", POOL)),
                    share=int(entry.get("share", 1)),
                    budget=Credits.of(str(budget)) if budget is not None else None,
                    guaranteed_gpus=int(entry.get("guaranteed_gpus", 0)),
                    borrowing_limit_gpus=(
                        int(entry["borrowing_limit_gpus"])
                        if entry.get("borrowing_limit_gpus") is not None
                        else None
                    ),
                )
            )
        except (KeyError, ValueError) as error:
            raise InvalidInput(f"{path}: an account needs a name and a kind: {error}") from None
    tree = AccountTree({a.name: a for a in accounts})
    mapping = {str(k): str(v) for k, v in data.get("tenants", {}).items()}
    projects: dict[str, str] = {}
    unplaced: list[str] = []
    for tenant in tenants:
        project = mapping.get(tenant, tenant)
        if project not in tree.accounts or tree[project].kind is not AccountKind.PROJECT:
            unplaced.append(tenant)
        projects[tenant] = project
    if unplaced:
        raise InvalidInput(
            f"{path}: no project for the tenants {', '.join(unplaced[:10])}"
            + (f" and {len(unplaced) - 10} more" if len(unplaced) > 10 else "")
            + "; map them under 'tenants'"
        )
    credits = {name: Credits.of(str(value)) for name, value in data.get("credits", {}).items()}
    for name in credits:
        if name not in tree.accounts:
            raise InvalidInput(f"{path}: credits for {name}, which is no project of the tree")
    return tree, projects, credits


def build(
    jobs: Sequence[TraceJob],
    clusters: tuple[ClusterSpec, ...],
    flavors: Mapping[str, Flavor],
    rates: Mapping[str, Rate] | None = None,
    tree: tuple[AccountTree, Mapping[str, str], Mapping[str, Credits]] | None = None,
    settings: SimSettings | None = None,
    assumptions: Sequence[str] = (),
) -> Scenario:
    settings = settings or SimSettings()
    tenants = list(dict.fromkeys(job.tenant for job in jobs))
    projects: Mapping[str, str]
    if tree is None:
        built, projects = default_tree(tenants)
        credits: Mapping[str, Credits] = {}
        notes = [
            "account tree: each tenant a project with its own organization and program, all "
            "of equal share; no budget binds (each project is awarded more credits than it "
            "can spend)"
        ]
    else:
        built, projects, credits = tree
        notes = []
    awarded = {account.name: credits.get(account.name, UNLIMITED) for account in built.projects()}
    present = sorted({item.flavor for cluster in clusters for item in cluster.inventory})
    return Scenario(
        jobs=tuple(jobs),
        clusters=clusters,
        flavors={name: flavors[name] for name in present},
        rate_card=rate_card(present, rates),
        tree=built,
        projects=dict(projects),
        credits=awarded,
        settings=settings,
        assumptions=(*assumptions, *notes, *settings.assumptions()),
    )


def changed(scenario: Scenario, path: Path) -> tuple[Scenario, list[str]]:
    """The scenario with a what-if file's changes, and each change in words.

    The file may hold ``shares`` (account -> share), ``budgets`` (account -> credits, or null
    for none), ``credits`` (project -> credits awarded), ``rates`` (flavor -> credits per
    GPU-hour) and ``clusters`` (inline text, as ``--cluster`` takes)."""
    data = read_structured(path)
    said: list[str] = []
    accounts = dict(scenario.tree.accounts)
    for name, share in data.get("shares", {}).items():
        _account(accounts, name, path)
        accounts[name] = replace(accounts[name], share=int(share))
        said.append(f"share of {name}: {scenario.tree[name].share} -> {int(share)}")
    for name, budget in data.get("budgets", {}).items():
        _account(accounts, name, path)
        value = Credits.of(str(budget)) if budget is not None else None
        accounts[name] = replace(accounts[name], budget=value)
        said.append(f"budget of {name}: {scenario.tree[name].budget} -> {value}")
    tree = AccountTree(accounts)
    credits = dict(scenario.credits)
    for name, amount in data.get("credits", {}).items():
        if name not in credits:
            raise InvalidInput(f"{path}: credits for {name}, which is no project")
        credits[name] = Credits.of(str(amount))
        said.append(f"credits awarded to {name}: {Credits.of(str(amount))}")
    rates = dict(scenario.rate_card.rates)
    for name, value in data.get("rates", {}).items():
        if name not in rates:
            raise InvalidInput(f"{path}: a rate for {name}, which no cluster has")
        rates[name] = Rate.of(str(value))
        said.append(f"rate of {name}: {scenario.rate_card.rates[name]} -> {rates[name]}")
    clusters, flavors = scenario.clusters, dict(scenario.flavors)
    if "clusters" in data:
        clusters, extra, more_rates = parse_clusters(str(data["clusters"]))
        names = sorted({item.flavor for cluster in clusters for item in cluster.inventory})
        flavors = catalogue(names, extra)
        rates = {**RATES, **rates, **more_rates}
        rates = {name: rates[name] for name in names if name in rates}
        said.append(f"clusters: {data['clusters']}")
    if not said:
        raise InvalidInput(f"{path} changes nothing (shares, budgets, credits, rates, clusters)")
    present = sorted({item.flavor for cluster in clusters for item in cluster.inventory})
    new = replace(
        scenario,
        tree=tree,
        credits=credits,
        clusters=clusters,
        flavors={name: flavors[name] for name in present},
        rate_card=rate_card(present, rates),
    )
    return new, said


def _account(accounts: Mapping[str, Account], name: str, path: Path) -> None:
    if name not in accounts:
        raise InvalidInput(f"{path}: no account {name!r} in the tree")
