"""The books as a service: the engine's operations run against the database.

``Books`` binds the repositories to one session. Every ledger movement follows the same path:
take the ledger lock, read the balances it touches, let the pure ``Ledger`` compute the entries
(or refuse), check them against the balances, and append them. Nothing here commits: the edge
that opened the session owns the transaction, so a refused operation leaves nothing behind.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from quotas.access import Principal, Role, Scope
from quotas.accounts import Account, AccountKind, AccountTree, with_article
from quotas.admission import PriorityClass
from quotas.allocations import AllocationRequest, Authority, Reviewers, TierCheck
from quotas.clock import Clock, utc_now
from quotas.db.access import AuditRepository, IdentityLinkRepository, RoleRepository
from quotas.db.outages import NodeOutageRepository
from quotas.db.priorities import PriorityGrantRepository
from quotas.db.repositories import (
    AccountRepository,
    AllocationRepository,
    ClusterRepository,
    FlavorRepository,
    FundingRepository,
    LedgerRepository,
    PeopleRepository,
)
from quotas.db.session import lock_ledger
from quotas.errors import (
    AlreadyDone,
    AlreadyExists,
    BooksError,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PeriodClosed,
    TreeError,
)
from quotas.flavors import Flavor, RateCard, rate_card_in_force
from quotas.funding import Funder, Period
from quotas.inventory import ClusterSpec
from quotas.ledger import AccountBalances, Actor, Ledger, Posting
from quotas.priorities import PriorityGrant, check_priority, may_grant, needs_grant
from quotas.quantities import Credits, Rate


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """Credits to reserve for one job (``Books.hold_many``)."""

    project: str
    job: str
    amount: Credits
    reason: str


BACKDATE_GRACE = timedelta(minutes=5)
CATALOGUE_SECONDS = 2.0
"""How long a process reuses the catalogue it read while no audited change was made: what a
change that bypasses ``Books`` (a cluster registered at start-up) may take to be seen."""


@dataclass(frozen=True)
class Catalogue:
    """What every submission is checked and quoted against, read once and shared by the
    requests of a process until something changes: the account tree (without a period's
    budgets), the flavors, every rate card version, and the clusters."""

    tree: AccountTree
    account_ids: Mapping[str, int]
    flavors: Mapping[str, Flavor]
    rate_cards: Sequence[RateCard]
    clusters: Sequence[ClusterSpec]

    def rate_card(self, at: datetime) -> RateCard:
        return rate_card_in_force(self.rate_cards, at)


_catalogues: WeakKeyDictionary[Engine, tuple[int, float, Catalogue]] = WeakKeyDictionary()
_catalogues_lock = threading.Lock()
"""How far in the past a new rate card may say it took effect (clock skew, a slow request)."""


class Books:
    """Operations on the books within one session (one transaction, owned by the caller)."""

    def __init__(
        self, session: Session, clock: Clock = utc_now, *, trust_cached_catalogue: bool = False
    ) -> None:
        self.session = session
        self.clock = clock
        self.trust_cached_catalogue = trust_cached_catalogue
        """Take this process's cached catalogue without asking whether it is still current:
        for a writer that checks ``catalogue_stamp`` in the statement that writes (a
        submission), so that asking costs no round trip of its own."""
        self.catalogue_stamp: int | None = None
        """The newest audit entry the catalogue in use was read at."""
        self.catalogue_on_trust = False
        """Whether the catalogue in use was taken without asking whether it is current: a
        refusal read from it is checked against the current one before it is given."""
        self.flavors = FlavorRepository(session)
        self.funding = FundingRepository(session)
        self.accounts = AccountRepository(session)
        self.people = PeopleRepository(session)
        self.clusters = ClusterRepository(session)
        self.ledger = LedgerRepository(session)
        self.allocations = AllocationRepository(session)
        self.audit = AuditRepository(session)
        self.roles = RoleRepository(session)
        self.outages = NodeOutageRepository(session)
        self._trees: dict[str | None, AccountTree] = {}
        self._changed = False
        self._catalogue: Catalogue | None = None

    # -- catalogue -------------------------------------------------------------------------

    def _audit(
        self,
        actor: str,
        action: str,
        target: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        self._changed = True
        self._catalogue = None
        self.audit.record(self.clock(), actor, action, target, before, after)

    def catalogue(self) -> Catalogue:
        """The catalogue, from this process's cache while the newest audit entry is the one it
        was read at (every change to the tree, the flavors or the rate card writes one) and it
        is under ``CATALOGUE_SECONDS`` old; read afresh (and not shared) once this unit of work
        changed anything itself. Read once per unit of work until it changes something."""
        if self._catalogue is not None:
            return self._catalogue
        bind = self.session.get_bind()
        engine = bind if isinstance(bind, Engine) else bind.engine
        now = time.monotonic()
        if self.trust_cached_catalogue and not self._changed:
            with _catalogues_lock:
                cached = _catalogues.get(engine)
            if cached is not None and now - cached[1] < CATALOGUE_SECONDS:
                self.catalogue_stamp, self._catalogue = cached[0], cached[2]
                self.catalogue_on_trust = True
                return cached[2]
        stamp = self.audit.last_id()
        self.catalogue_stamp = stamp
        self.catalogue_on_trust = False
        if not self._changed:
            with _catalogues_lock:
                cached = _catalogues.get(engine)
            if cached is not None and cached[0] == stamp and now - cached[1] < CATALOGUE_SECONDS:
                self._catalogue = cached[2]
                return cached[2]
        catalogue = Catalogue(
            self.accounts.tree(None),
            self.accounts.ids(),
            self.flavors.all(),
            self.flavors.rate_cards(),
            self.clusters.all(),
        )
        if not self._changed:
            with _catalogues_lock:
                _catalogues[engine] = (stamp, now, catalogue)
        self._catalogue = catalogue
        return catalogue

    def catalogue_moved(self) -> None:
        """An audited change may have landed after the catalogue in use was read (a write that
        checked ``catalogue_stamp`` found a newer one, or a refusal read from a catalogue taken
        on trust): read it afresh, and check it is current, on next use."""
        self._catalogue = None
        self._trees.pop(None, None)
        self.trust_cached_catalogue = False

    def add_flavor(
        self, flavor: Flavor, throughput_source: str = "", actor: str = "system"
    ) -> None:
        if flavor.name in self.flavors.all():
            raise AlreadyExists(f"flavor {flavor.name} already exists")
        self.flavors.add(flavor, throughput_source)
        self._audit(actor, "flavor.add", f"flavor/{flavor.name}", None, _record(flavor))

    def publish_rate_card(
        self, rates: Mapping[str, Rate], effective_from: datetime, actor: str, note: str = ""
    ) -> RateCard:
        """A new version of the rate card; jobs admitted before it keep their recorded rate.

        It prices every flavor, and no other. It may take effect later, but not earlier than
        now (give or take ``BACKDATE_GRACE`` for clocks), except the first card of a pool.
        """
        known = self.flavors.all()
        missing = sorted(set(known) - set(rates))
        if missing:
            raise InvalidInput(f"a rate card prices every flavor; missing {', '.join(missing)}")
        unknown = sorted(set(rates) - set(known))
        if unknown:
            raise InvalidInput(f"rates name unknown flavors: {', '.join(unknown)}")
        cards = self.flavors.rate_cards()
        if cards and effective_from < self.clock() - BACKDATE_GRACE:
            raise InvalidInput(
                "effective_from is in the past; a rate card cannot be backdated (jobs admitted "
                "since were priced by the card then in force)"
            )
        card = RateCard(self.flavors.next_rate_card_version(), effective_from, dict(rates))
        self.flavors.add_rate_card(card, actor, note)
        self._audit(
            actor,
            "rate_card.publish",
            f"rate_card/{card.version}",
            _rate_card_record(cards[-1]) if cards else None,
            _rate_card_record(card),
        )
        return card

    def rate_card(self, at: datetime | None = None) -> RateCard:
        return self.catalogue().rate_card(at or self.clock())

    def add_period(self, period: Period, actor: str = "system") -> None:
        for other in self.funding.periods():
            if other.name == period.name:
                raise AlreadyExists(f"period {period.name} already exists")
            if period.starts_at < other.ends_at and other.starts_at < period.ends_at:
                raise InvalidInput(f"period {period.name} overlaps period {other.name}")
        self.funding.add_period(period)
        self._audit(actor, "period.add", f"period/{period.name}", None, _record(period))

    def add_funder(self, funder: Funder, actor: str = "system") -> None:
        if funder.name in {each.name for each in self.funding.funders()}:
            raise AlreadyExists(f"funder {funder.name} already exists")
        self.funding.add_funder(funder)
        self._audit(actor, "funder.add", f"funder/{funder.name}", None, _record(funder))

    def add_cluster(self, cluster: ClusterSpec, actor: str = "system") -> None:
        """Declare a cluster: its flavors are known ones, a dedicated cluster belongs to an
        organization or a program, and each burst budget is a program's."""
        if cluster.name in {each.name for each in self.clusters.all()}:
            raise AlreadyExists(f"cluster {cluster.name} already exists")
        known = self.flavors.all()
        for item in cluster.inventory:
            if item.flavor not in known:
                raise InvalidInput(f"cluster {cluster.name}: unknown flavor {item.flavor!r}")
        if cluster.dedicated_to:
            owner = self.tree().accounts.get(cluster.dedicated_to)
            if owner is None or owner.kind not in (AccountKind.ORGANIZATION, AccountKind.PROGRAM):
                raise InvalidInput(
                    f"cluster {cluster.name}: a dedicated cluster belongs to an organization or "
                    f"a program; {cluster.dedicated_to!r} is neither"
                )
        for program, _ in cluster.burst_budgets:
            self._burst_program(cluster.name, program)
        self.clusters.add(cluster)
        self._audit(actor, "cluster.add", f"cluster/{cluster.name}", None, _cluster_record(cluster))

    def set_burst_budget(
        self, cluster: str, program: str, budget: Credits | None, actor: str = "system"
    ) -> ClusterSpec:
        """Cap what ``program``'s jobs hold and spend at the burst target ``cluster`` in a
        period (``None`` lifts the cap: they burst there within their own credits). A lower cap
        stops new bursts past it; nothing already there is stopped. Returns the cluster."""
        spec = next((each for each in self.clusters.all() if each.name == cluster), None)
        if spec is None:
            raise NotFound(f"no cluster {cluster}")
        self._burst_program(cluster, program, known_only=True)
        budgets = dict(spec.burst_budgets)
        before = budgets.pop(program, None)
        if budget is not None:
            budgets[program] = budget
        changed = replace(spec, burst_budgets=tuple(sorted(budgets.items())))  # validates it
        self.clusters.set_burst_budget(cluster, program, budget)
        self._audit(
            actor,
            "burst_budget.set",
            f"cluster/{cluster}",
            {"program": program, "credits": str(before) if before is not None else None},
            {"program": program, "credits": str(budget) if budget is not None else None},
        )
        return changed

    def _burst_program(self, cluster: str, program: str, known_only: bool = False) -> None:
        """Refuse a burst budget for anything but a program (an unknown name is "not found"
        with ``known_only``, as a name in a path is)."""
        account = self.tree().accounts.get(program)
        if account is None and known_only:
            raise NotFound(f"no account {program}")
        if account is None or account.kind is not AccountKind.PROGRAM:
            what = "no account" if account is None else with_article(account.kind)
            raise InvalidInput(
                f"cluster {cluster}: a burst budget is a program's; {program!r} is {what}"
            )

    def current_period(self, at: datetime | None = None) -> Period:
        moment = at or self.clock()
        for period in self.funding.periods():
            if period.contains(moment):
                return period
        raise NotFound(f"no allocation period covers {moment.isoformat()}")

    # -- the account tree ------------------------------------------------------------------

    def tree(self, period: str | None = None) -> AccountTree:
        """The account tree, with budgets of ``period`` when one is named.

        Read once per unit of work (this session) and kept: a scheduling cycle holds credits
        for thousands of jobs against one tree. Changes made through ``Books`` refresh it.
        """
        if period not in self._trees:
            if period is None:
                self._trees[period] = self.catalogue().tree
            else:
                self.funding.period(period)
                self._trees[period] = self.accounts.tree(period)
        return self._trees[period]

    def add_account(self, account: Account, actor: str = "system") -> None:
        tree = self.tree()
        if account.name in tree:
            raise AlreadyExists(f"an account named {account.name} already exists")
        if account.kind is AccountKind.POOL and len(tree.accounts):
            raise TreeError("there is one pool; add programs under it")
        tree.with_account(account)  # validates the whole new tree
        self.accounts.save(account)
        self._trees.clear()
        self._audit(actor, "account.add", f"account/{account.name}", None, _record(account))

    def update_account(self, account: Account, actor: str = "system") -> None:
        """Change an account's share, guarantee, borrowing limit or parent."""
        tree = self.tree()
        before = tree[account.name]
        if before.kind is not account.kind:
            raise TreeError(f"{account.name} is {with_article(before.kind)}; its kind is fixed")
        tree.with_account(account)
        self.accounts.save(account)
        self._trees.clear()
        self._audit(
            actor, "account.update", f"account/{account.name}", _record(before), _record(account)
        )

    def set_budget(
        self, account: str, period: str, budget: Credits | None, actor: str = "system"
    ) -> None:
        self.tree()[account]
        tree = self.tree(period)
        before = tree[account].budget
        if budget is not None and budget.milli < 0:
            raise InvalidInput("a budget cannot be negative")
        if budget is not None:
            used = self.balances(account, period)
            spoken_for = used.spent + used.held
            if budget < spoken_for:
                raise Conflict(
                    f"{account} has already spent or holds {spoken_for} credits in {period}; "
                    f"a budget of {budget} would be below that (set at least {spoken_for})"
                )
        self.accounts.set_budget(account, period, budget)
        self._trees.clear()
        self._audit(
            actor,
            "budget.set",
            f"account/{account}",
            {"period": period, "budget": str(before) if before is not None else None},
            {"period": period, "budget": str(budget) if budget is not None else None},
        )

    # -- people ----------------------------------------------------------------------------

    def add_member(self, user: str, project: str, role: Role, actor: str = "system") -> None:
        if role not in (Role.RESEARCHER, Role.PI):
            raise InvalidInput(f"a project member is a researcher or a pi, not {role}")
        if self.tree()[project].kind is not AccountKind.PROJECT:
            raise InvalidInput(f"{project} is not a project")
        before = {m.user: m.role for m in self.people.members() if m.project == project}
        if user in before:
            raise AlreadyExists(f"{user} is already a {before[user]} of {project}")
        self.people.add_member(user, project, role.value)
        self._audit(
            actor, "membership.add", f"account/{project}", None, {"user": user, "role": role}
        )

    def remove_member(self, user: str, project: str, actor: str = "system") -> None:
        role = self.people.remove_member(user, project)
        self._audit(
            actor, "membership.remove", f"account/{project}", {"user": user, "role": role}, None
        )

    def add_program_manager(self, user: str, program: str, actor: str = "system") -> None:
        if self.tree()[program].kind is not AccountKind.PROGRAM:
            raise InvalidInput(f"{program} is not a program")
        self.people.add_program_manager(user, program)
        self._audit(
            actor,
            "membership.add",
            f"account/{program}",
            None,
            {"user": user, "role": Role.PROGRAM_MANAGER},
        )

    def set_member_role(self, user: str, project: str, role: Role, actor: str = "system") -> None:
        """Make a member of ``project`` a researcher or a pi."""
        if role not in (Role.RESEARCHER, Role.PI):
            raise InvalidInput(f"a project member is a researcher or a pi, not {role}")
        before = self.people.set_member_role(user, project, role.value)
        if before == role.value:
            return
        self._audit(
            actor,
            "membership.change",
            f"account/{project}",
            {"user": user, "role": before},
            {"user": user, "role": role},
        )

    def remove_program_manager(self, user: str, program: str, actor: str = "system") -> None:
        self.people.remove_program_manager(user, program)
        self._audit(
            actor,
            "membership.remove",
            f"account/{program}",
            {"user": user, "role": Role.PROGRAM_MANAGER},
            None,
        )

    def add_user(
        self, name: str, display_name: str = "", email: str = "", actor: str = "system"
    ) -> None:
        if self.people.has_user(name):
            raise AlreadyExists(f"user {name} already exists")
        self.people.add_user(name, display_name, email)
        self._audit(
            actor,
            "user.add",
            f"user/{name}",
            None,
            {"name": name, "display_name": display_name, "email": email},
        )

    def link_subject(self, issuer: str, subject: str, user: str, actor: str = "system") -> int:
        """Sign-in as ``subject`` from ``issuer`` acts as ``user``."""
        links = IdentityLinkRepository(self.session)
        linked = links.user_for_subject(issuer, subject)
        if linked is not None:
            raise AlreadyExists(f"subject {subject!r} of {issuer} is already linked to {linked}")
        link = links.link_subject(issuer, subject, user)
        self._audit(
            actor,
            "identity.link",
            f"user/{user}",
            None,
            {"id": link, "issuer": issuer, "claim": "sub", "value": subject, "user": user},
        )
        return link

    def unlink(self, link_id: int, actor: str = "system") -> None:
        """Remove an identity link; sign-ins it mapped no longer act as its user or role."""
        links = IdentityLinkRepository(self.session)
        link = links.get(link_id)
        links.remove(link_id)
        target = (
            f"user/{link.user}"
            if link.user is not None
            else f"account/{link.account}"
            if link.account is not None
            else f"role/{link.role}"
        )
        self._audit(actor, "identity.unlink", target, _record(link), None)

    def link_group(
        self,
        issuer: str,
        group: str,
        role: Role,
        account: str | None = None,
        actor: str = "system",
    ) -> int:
        """Members of ``group`` at ``issuer`` hold ``role`` (pool-wide, or in ``account``)."""
        if account is not None:
            kind = self.tree()[account].kind
            wanted = AccountKind.PROGRAM if role is Role.PROGRAM_MANAGER else AccountKind.PROJECT
            if kind is not wanted:
                raise InvalidInput(f"a {role} is held in a {wanted}; {account} is a {kind}")
        link = IdentityLinkRepository(self.session).link_group(issuer, group, role, account)
        target = f"account/{account}" if account is not None else f"role/{role}"
        self._audit(
            actor,
            "identity.link",
            target,
            None,
            {
                "id": link,
                "issuer": issuer,
                "claim": "group",
                "value": group,
                "role": role.value,
                "account": account,
            },
        )
        return link

    def grant_role(self, user: str, role: Role, actor: str = "system") -> None:
        self.roles.grant(user, role)
        self._audit(actor, "role.grant", f"user/{user}", None, {"role": role})

    def revoke_role(self, user: str, role: Role, actor: str = "system") -> None:
        self.roles.revoke(user, role)
        self._audit(actor, "role.revoke", f"user/{user}", {"role": role}, None)

    # -- priority grants (quotas.priorities) -----------------------------------------------

    def _grantable(self, project: str, priority: PriorityClass, by: Principal, verb: str) -> None:
        """404 unless ``by`` may read ``project``; 403 unless they may grant in it."""
        tree = self.tree()
        if project not in tree or not by.can_read_account(tree, project):
            raise NotFound(f"no account {project}")
        if tree[project].kind is not AccountKind.PROJECT:
            raise InvalidInput(
                f"{project} is {with_article(tree[project].kind)}; projects hold priority grants"
            )
        by.require(Scope.MANAGE)
        if not may_grant(by, tree, project):
            raise Forbidden(
                f"{by.user} may not {verb} {priority} work in {project}: only a program manager "
                f"of {self.program_of(project)} or an admin may"
            )

    def grant_priority(
        self,
        project: str,
        priority: PriorityClass,
        by: Principal,
        expires_at: datetime | None = None,
    ) -> PriorityGrant:
        """Let ``project`` submit work of ``priority`` (a class above normal) until
        ``expires_at`` (``None``: until revoked), replacing an earlier grant of that class."""
        self._grantable(project, priority, by, "grant")
        if expires_at is not None and expires_at.tzinfo is not None:
            try:
                expires_at = expires_at.astimezone(UTC)
            except OverflowError:
                raise InvalidInput(
                    f"{expires_at.isoformat()} is outside the calendar in UTC"
                ) from None
        grant = PriorityGrant(project, priority, by.user, self.clock(), expires_at)
        grants = PriorityGrantRepository(self.session)
        before = grants.get(project, priority)
        grants.put(grant)
        self._audit(
            by.user,
            "priority.grant",
            f"account/{project}",
            _record(before) if before is not None else None,
            _record(grant),
        )
        return grant

    def revoke_priority(
        self, project: str, priority: PriorityClass, by: Principal
    ) -> PriorityGrant:
        """Withdraw ``project``'s grant of ``priority``; its later submissions of that class are
        refused (jobs already queued keep theirs). Returns the grant revoked."""
        self._grantable(project, priority, by, "revoke")
        grants = PriorityGrantRepository(self.session)
        before = grants.get(project, priority)
        if before is None:
            raise NotFound(f"{project} holds no grant of {priority} work")
        grants.remove(project, priority)
        self._audit(by.user, "priority.revoke", f"account/{project}", _record(before), None)
        return before

    def priority_grants(self, project: str, by: Principal) -> list[PriorityGrant]:
        """``project``'s grants, in force or lapsed: for whoever may read the project."""
        tree = self.tree()
        if project not in tree or not by.can_read_account(tree, project):
            raise NotFound(f"no account {project}")
        return PriorityGrantRepository(self.session).of_project(project)

    def require_priority_grant(self, project: str, priority: PriorityClass) -> None:
        """Refuse (``PriorityNotGranted``) work of a class above normal in ``project`` unless
        the project holds a grant of that class in force now; checked at every submission."""
        if not needs_grant(priority):
            return
        grant = PriorityGrantRepository(self.session).get(project, priority)
        check_priority(self.tree(), project, priority, grant, self.clock())

    # -- the ledger ------------------------------------------------------------------------

    def _post(
        self,
        period: str,
        touches: Callable[[AccountTree], Iterable[str] | None],
        build: Callable[[Ledger], list[Posting]],
    ) -> list[int]:
        """Lock, read the balances the movement touches, compute its entries, append them."""
        self.funding.period(period)
        if self.funding.expired_at(period) is not None:
            raise PeriodClosed(f"period {period} has expired; its books are closed")
        lock_ledger(self.session)
        tree = self.tree(period)
        if not tree.accounts:
            raise TreeError("the pool has no accounts yet")
        accounts = touches(tree)
        balances = self.ledger.balances(period, None if accounts is None else set(accounts))
        postings = build(Ledger(tree, balances, period))
        balances.copy().apply(postings)  # refuses any overdraft before anything is written
        return self.ledger.append(postings, self.clock())

    def contribute(
        self, funder: str, period: str, amount: Credits, actor: str, reason: str
    ) -> list[int]:
        if funder not in {each.name for each in self.funding.funders()}:
            raise NotFound(f"unknown funder {funder!r}")
        return self._post(
            period,
            lambda tree: [tree.root.name],
            lambda ledger: ledger.contribute(funder, amount, Actor(actor, reason)),
        )

    def appropriate(
        self,
        program: str,
        period: str,
        amount: Credits,
        actor: str,
        reason: str,
        funder: str | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda tree: [tree.root.name, program],
            lambda ledger: ledger.appropriate(program, amount, Actor(actor, reason), funder),
        )

    def award(
        self,
        source: str,
        project: str,
        period: str,
        amount: Credits,
        actor: str,
        reason: str,
        funder: str | None = None,
        allocation: int | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [source, project],
            lambda ledger: ledger.award(
                source, project, amount, Actor(actor, reason), funder, allocation
            ),
        )

    def hold(
        self, project: str, job: str, amount: Credits, actor: str, reason: str, period: str
    ) -> list[int]:
        """Reserve credits for a job; never past the project's credits or any budget above it."""
        return self._post(
            period,
            lambda tree: _hold_scope(tree, project),
            lambda ledger: ledger.hold(project, job, amount, Actor(actor, reason)),
        )

    def hold_many(
        self, holds: Sequence[HoldRequest], actor: str, period: str
    ) -> dict[str, BooksError]:
        """``hold`` for many jobs at once: one lock, one read of the balances, one write.

        Each hold is judged against the balances as the holds before it left them; a refused
        one changes nothing. Returns the refused holds' errors by job (the rest are made).
        """
        if not holds:
            return {}
        self.funding.period(period)
        if self.funding.expired_at(period) is not None:
            raise PeriodClosed(f"period {period} has expired; its books are closed")
        lock_ledger(self.session)
        tree = self.tree(period)
        touched = {name for hold in holds for name in _hold_scope(tree, hold.project)}
        balances = self.ledger.balances(period, touched)
        ledger = Ledger(tree, balances, period)
        postings: list[Posting] = []
        refused: dict[str, BooksError] = {}
        for hold in holds:
            try:
                made = ledger.hold(hold.project, hold.job, hold.amount, Actor(actor, hold.reason))
                balances.apply(made)
            except BooksError as error:
                refused[hold.job] = error
                continue
            postings.extend(made)
        self.ledger.append_many(postings, self.clock())
        return refused

    def charge(
        self, project: str, job: str, amount: Credits, actor: str, reason: str, period: str
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [project],
            lambda ledger: ledger.charge(project, job, amount, Actor(actor, reason)),
        )

    def release(
        self,
        project: str,
        job: str,
        actor: str,
        reason: str,
        period: str,
        amount: Credits | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [project],
            lambda ledger: ledger.release(project, job, Actor(actor, reason), amount),
        )

    def refund(
        self, project: str, job: str, amount: Credits, actor: str, reason: str, period: str
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [project],
            lambda ledger: ledger.refund(project, job, amount, Actor(actor, reason)),
        )

    def adjust(
        self,
        account: str,
        period: str,
        delta: Credits,
        actor: str,
        reason: str,
        funder: str | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda tree: [step.name for step in tree.path(account)[-2:]],
            lambda ledger: ledger.adjust(account, delta, Actor(actor, reason), funder),
        )

    def reverse(self, entry_id: int, actor: str, reason: str) -> list[int]:
        entry = self.ledger.get(entry_id)
        if self.ledger.is_reversed(entry_id):
            raise AlreadyDone(f"ledger entry {entry_id} has already been reversed")
        touched = [name for name in (entry.posting.target.account,) if name]
        return self._post(
            entry.posting.period,
            lambda _tree: touched,
            lambda ledger: ledger.reverse(entry_id, entry.posting, Actor(actor, reason)),
        )

    def expire(self, period: str, actor: str) -> list[int]:
        """Close a period: every account's unused credits lapse; no more entries after this."""
        ends_at = self.funding.period(period).ends_at
        if self.clock() < ends_at:
            raise InvalidInput(f"period {period} runs until {ends_at.isoformat()}")
        ids = self._post(
            period,
            lambda _tree: None,
            lambda ledger: ledger.expire(Actor(actor, f"period {period} ended")),
        )
        self.funding.mark_expired(period, self.clock())
        return ids

    def balances_of(self, accounts: Iterable[str], period: str) -> dict[str, AccountBalances]:
        """``balances`` of several accounts at once, from one read of the ledger."""
        tree = self.tree(period)
        wanted = list(accounts)
        names = set(wanted)
        for account in wanted:
            names.update(node.name for node in tree.descendants(account))
        found = self.ledger.balances(period, names)
        return {account: found.of_account(tree, account, period) for account in wanted}

    def balances(self, account: str, period: str) -> AccountBalances:
        """Spent, held and available credits of ``account``'s subtree, exact."""
        tree = self.tree(period)
        names = [account, *(node.name for node in tree.descendants(account))]
        return self.ledger.balances(period, names).of_account(tree, account, period)

    # -- allocation requests ---------------------------------------------------------------

    def request_allocation(self, request: AllocationRequest, actor: str) -> int:
        tree = self.tree()
        if tree[request.project].kind is not AccountKind.PROJECT:
            raise InvalidInput(f"{request.project} is not a project")
        self.funding.period(request.period)
        known = self.flavors.all()
        for flavor in request.flavors:
            if flavor not in known:
                raise InvalidInput(f"unknown flavor {flavor!r}")
        request_id = self.allocations.add(request, actor, self.clock())
        self._audit(actor, "allocation.create", f"allocation/{request_id}", None, _record(request))
        return request_id

    def program_of(self, project: str) -> str:
        path = self.tree().path(project)
        return next(node.name for node in path if node.kind is AccountKind.PROGRAM)

    def submit_request(self, request_id: int, actor: str) -> AllocationRequest:
        """Submit; approved and awarded at once while the project's auto-approved credits in the
        period, this request included, stay within the program's auto-approval tier."""
        request = self.allocations.get(request_id)
        tier = self.accounts.auto_approve_threshold(self.program_of(request.project))
        if tier is not None:
            lock_ledger(self.session)  # one tier decision at a time: two cannot both fit
        check = request.tier_check(
            tier, self.allocations.auto_approved(request.project, request.period)
        )
        submitted = request.submit(check.tier, check.auto_approved)
        self.allocations.save(request_id, submitted, self.clock())
        why = check.why
        if not check.approves:
            why += "; the review goes to " + self.reviewers(request_id).waiting_for()
        self._audit(
            actor,
            "allocation.submit",
            f"allocation/{request_id}",
            _record(request),
            {**_record(submitted), "auto_approval": _tier_record(check), "why": why},
        )
        if submitted.awarded is not None:
            self._award_request(request_id, submitted, actor)
        return submitted

    def reviewers(self, request_id: int) -> Reviewers:
        """Who may review a request: its program's managers or an admin, less anyone who made
        it or belongs to its project (read fresh, not from a principal cached at sign-in)."""
        stored = self.allocations.stored(request_id)
        project = stored.request.project
        program = self.program_of(project)
        return Reviewers(
            program=program,
            project=project,
            requested_by=stored.created_by,
            managers=self.people.program_managers(program),
            members=[member.user for member in self.people.members_of(project)],
        )

    def review_authority(self, request_id: int, who: Principal | str) -> tuple[str, Authority]:
        """The reviewer's name and why they may review; refused with ``ConflictOfInterest``
        or ``Forbidden``. A name is looked up in gpupool's records; the portal passes the
        principal it authenticated, which may carry identity-provider group grants."""
        person = who if isinstance(who, Principal) else self.roles.principal(who)
        reviewers = self.reviewers(request_id)
        return person.user, reviewers.authority(
            person.user,
            manages=reviewers.program in person.programs or person.user in reviewers.managers,
            admin=person.is_admin,
            member=reviewers.project in person.projects,
            reads_program=person.can_read_account(self.tree(), reviewers.program),
        )

    def review(
        self,
        request_id: int,
        reviewer: Principal | str,
        decision: str,
        reason: str,
        awarded: Credits | None = None,
    ) -> AllocationRequest:
        """A manager of the project's program, or an admin, approves, adjusts or declines.

        Nobody reviews a request they made or whose project they belong to
        (``ConflictOfInterest``); the audit entry records the reviewer's authority and why.
        """
        request = self.allocations.get(request_id)
        name, authority = self.review_authority(request_id, reviewer)
        if decision == "approve":
            reviewed = request.approve(name, reason)
        elif decision == "adjust":
            if awarded is None:
                raise InvalidInput("an adjustment names the amount awarded")
            reviewed = request.adjust(name, reason, awarded)
        elif decision == "decline":
            reviewed = request.decline(name, reason)
        else:
            raise InvalidInput(f"a review approves, adjusts or declines; not {decision!r}")
        self.allocations.save(request_id, reviewed, self.clock())
        self._audit(
            name,
            f"allocation.{decision}",
            f"allocation/{request_id}",
            _record(request),
            {**_record(reviewed), "authority": _record(authority)},
        )
        if reviewed.awarded is not None:
            self._award_request(request_id, reviewed, name)
        return reviewed

    def _award_request(self, request_id: int, request: AllocationRequest, actor: str) -> None:
        """Record the tranches and release the first one as an award from the program."""
        tranches = request.tranches()
        self.allocations.add_tranches(request_id, tranches)
        self._release(request_id, 1, actor, None)

    def release_tranche(self, request_id: int, seq: int, actor: Principal | str) -> list[int]:
        """Release a later tranche: whoever may review the request, on the same terms."""
        self.allocations.get(request_id)  # lock the request before deciding on it
        name, authority = self.review_authority(request_id, actor)
        return self._release(request_id, seq, name, authority)

    def _release(
        self, request_id: int, seq: int, actor: str, authority: Authority | None
    ) -> list[int]:
        request = self.allocations.get(request_id)
        if not request.state.is_awarded:
            raise InvalidTransition(f"a {request.state} request has nothing to release")
        tranches = {
            number: (amount, released)
            for number, amount, released in self.allocations.tranches(request_id)
        }
        if seq not in tranches:
            raise NotFound(f"allocation request {request_id} has no tranche {seq}")
        amount, released = tranches[seq]
        if released is not None:
            raise InvalidInput(f"tranche {seq} was released on {released.date().isoformat()}")
        ids = self.award(
            self.program_of(request.project),
            request.project,
            request.period,
            amount,
            actor,
            f"allocation request {request_id}, tranche {seq} of {len(tranches)}",
            allocation=request_id,
        )
        self.allocations.mark_released(request_id, seq, actor, self.clock())
        released_by = {"authority": _record(authority)} if authority is not None else {}
        self._audit(
            actor,
            "allocation.release_tranche",
            f"allocation/{request_id}",
            None,
            {"tranche": seq, "amount": str(amount), "ledger_entries": ids, **released_by},
        )
        return ids

    def withdraw_request(self, request_id: int, actor: str = "system") -> AllocationRequest:
        request = self.allocations.get(request_id)
        withdrawn = request.withdraw()
        self.allocations.save(request_id, withdrawn, self.clock())
        self._audit(
            actor,
            "allocation.withdraw",
            f"allocation/{request_id}",
            _record(request),
            _record(withdrawn),
        )
        return withdrawn


def _hold_scope(tree: AccountTree, project: str) -> list[str]:
    """Accounts whose balances a hold reads: the project and every budget-capped subtree."""
    names = {project}
    for account in tree.path(project):
        if account.budget is not None:
            names.add(account.name)
            names.update(node.name for node in tree.descendants(account.name))
    return sorted(names)


def _record(value: object) -> dict[str, Any]:
    """A JSON-ready picture of a dataclass for the audit log: enums by value, credits as text."""
    if not is_dataclass(value) or isinstance(value, type):
        raise TypeError(f"not a record: {value!r}")
    return {item.name: _plain(getattr(value, item.name)) for item in fields(value)}


def _cluster_record(cluster: ClusterSpec) -> dict[str, Any]:
    """A cluster for the audit log, its burst budgets as program -> credits."""
    return {
        **_record(cluster),
        "burst_budgets": {program: str(budget) for program, budget in cluster.burst_budgets},
    }


def _plain(value: object) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (Credits, Rate)):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return _record(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def _tier_record(check: TierCheck) -> dict[str, Any]:
    """The auto-approval decision of a submission, for the audit log."""
    return {
        "tier": str(check.tier) if check.tier is not None else None,
        "auto_approved_before": str(check.auto_approved),
        "cumulative": str(check.cumulative),
        "approved": check.approves,
    }


def _rate_card_record(card: RateCard) -> dict[str, Any]:
    return {
        "version": card.version,
        "effective_from": card.effective_from.isoformat(),
        "rates": {flavor: str(rate) for flavor, rate in sorted(card.rates.items())},
    }
