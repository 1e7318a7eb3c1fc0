"""Repositories: all SQL of the books, bound to a session, taking and returning domain values.

They never commit; the edge that opened the session does. Ledger rows are only ever inserted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, literal, select, union_all
from sqlalchemy.orm import Session

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.admission import SiteKind
from quotas.allocations import AUTO_APPROVER, AllocationRequest, RequestState
from quotas.db.bulk import insert_rows
from quotas.db.models import (
    AccountRow,
    AllocationRequestRow,
    BudgetRow,
    BurstBudgetRow,
    ClusterRow,
    ExchangeRateRow,
    FlavorRow,
    FunderRow,
    LedgerEntryRow,
    MembershipRow,
    NodeGroupRow,
    PeriodRow,
    ProgramManagerRow,
    RateCardRow,
    TrancheRow,
    UserRow,
)
from quotas.errors import InvalidInput, NoSuchAccount, NoSuchFlavor, NotFound
from quotas.flavors import Flavor, RateCard
from quotas.funding import Funder, FunderKind, Period
from quotas.inventory import BackendKind, ClusterSpec, Inventory, Tenancy
from quotas.ledger import Balances, Bucket, EntryKind, Pocket, Posting
from quotas.quantities import Credits, Rate

Entries = LedgerEntryRow
LEDGER = LedgerEntryRow.metadata.tables[LedgerEntryRow.__tablename__]


class FlavorRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, flavor: Flavor, throughput_source: str = "") -> None:
        self.session.add(
            FlavorRow(
                name=flavor.name,
                memory_gb=flavor.memory_gb,
                relative_throughput=flavor.relative_throughput,
                ray_resource=flavor.ray_resource,
                kubernetes_resource=flavor.kubernetes_resource,
                throughput_source=throughput_source,
                named_only=flavor.named_only,
            )
        )
        self.session.flush()

    def all(self) -> dict[str, Flavor]:
        rows = self.session.scalars(select(FlavorRow).order_by(FlavorRow.name))
        return {
            row.name: Flavor(
                row.name,
                row.memory_gb,
                row.relative_throughput,
                row.ray_resource,
                row.kubernetes_resource,
                row.named_only,
            )
            for row in rows
        }

    def add_rate_card(self, card: RateCard, created_by: str, note: str = "") -> None:
        known = set(self.all())
        for flavor in card.rates:
            if flavor not in known:
                raise NoSuchFlavor(flavor, known)
        self.session.add(
            RateCardRow(
                version=card.version,
                effective_from=card.effective_from,
                created_by=created_by,
                note=note,
            )
        )
        self.session.flush()
        self.session.add_all(
            ExchangeRateRow(
                version=card.version, flavor=flavor, milli_per_gpu_hour=rate.milli_per_gpu_hour
            )
            for flavor, rate in card.rates.items()
        )
        self.session.flush()

    def rate_cards(self) -> list[RateCard]:
        rates: dict[int, dict[str, Rate]] = {}
        for row in self.session.scalars(select(ExchangeRateRow)):
            rates.setdefault(row.version, {})[row.flavor] = Rate(row.milli_per_gpu_hour)
        return [
            RateCard(row.version, as_utc(row.effective_from), rates.get(row.version, {}))
            for row in self.session.scalars(select(RateCardRow).order_by(RateCardRow.version))
        ]

    def next_rate_card_version(self) -> int:
        return (self.session.scalar(select(func.max(RateCardRow.version))) or 0) + 1

    def rate_card_notes(self) -> dict[int, tuple[str, str]]:
        """Who published each rate card version, and their note."""
        rows = self.session.execute(
            select(RateCardRow.version, RateCardRow.created_by, RateCardRow.note)
        )
        return {version: (created_by, note) for version, created_by, note in rows}


class FundingRepository:
    """Funders and periods."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_funder(self, funder: Funder) -> None:
        self.session.add(
            FunderRow(
                name=funder.name,
                display_name=funder.display_name,
                kind=funder.kind.value,
                krw_per_credit=funder.krw_per_credit,
            )
        )
        self.session.flush()

    def funders(self) -> list[Funder]:
        rows = self.session.scalars(select(FunderRow).order_by(FunderRow.name))
        return [
            Funder(row.name, row.display_name, FunderKind(row.kind), row.krw_per_credit)
            for row in rows
        ]

    def add_period(self, period: Period) -> None:
        self.session.add(
            PeriodRow(name=period.name, starts_at=period.starts_at, ends_at=period.ends_at)
        )
        self.session.flush()

    def periods(self) -> list[Period]:
        rows = self.session.scalars(select(PeriodRow).order_by(PeriodRow.starts_at))
        return [Period(row.name, as_utc(row.starts_at), as_utc(row.ends_at)) for row in rows]

    def period(self, name: str) -> Period:
        row = self.session.get(PeriodRow, name)
        if row is None:
            raise NotFound(f"unknown period {name!r}")
        return Period(row.name, as_utc(row.starts_at), as_utc(row.ends_at))

    def mark_expired(self, name: str, at: datetime) -> None:
        row = self.session.get(PeriodRow, name)
        if row is None:
            raise NotFound(f"unknown period {name!r}")
        row.expired_at = at
        self.session.flush()

    def expired_at(self, name: str) -> datetime | None:
        row = self.session.get(PeriodRow, name)
        return as_utc(row.expired_at) if row and row.expired_at else None


class AccountRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def ids(self) -> dict[str, int]:
        return dict(self.session.execute(select(AccountRow.name, AccountRow.id)).all())

    def id_of(self, name: str) -> int:
        found = self.session.scalar(select(AccountRow.id).where(AccountRow.name == name))
        if found is None:
            raise NoSuchAccount(name)
        return found

    def tree(self, period: str | None = None) -> AccountTree:
        """The whole tree, with each account's budget for ``period`` (none if not given)."""
        rows = list(self.session.scalars(select(AccountRow)))
        names = {row.id: row.name for row in rows}
        budgets: dict[int, int] = {}
        if period is not None:
            budgets = dict(
                self.session.execute(
                    select(BudgetRow.account_id, BudgetRow.budget_milli).where(
                        BudgetRow.period == period
                    )
                ).all()
            )
        return AccountTree.of(
            Account(
                name=row.name,
                kind=AccountKind(row.kind),
                parent=names[row.parent_id] if row.parent_id is not None else None,
                share=row.share,
                budget=Credits(budgets[row.id]) if row.id in budgets else None,
                guaranteed_gpus=row.guaranteed_gpus,
                borrowing_limit_gpus=row.borrowing_limit_gpus,
                display_name=row.display_name,
                may_burst=row.may_burst,
            )
            for row in rows
        )

    def save(self, account: Account) -> None:
        """Insert or update one account (the caller validated the tree it belongs to)."""
        row = self.session.scalar(select(AccountRow).where(AccountRow.name == account.name))
        if row is None:
            row = AccountRow(name=account.name)
            self.session.add(row)
        row.kind = account.kind.value
        row.parent_id = self.id_of(account.parent) if account.parent else None
        row.display_name = account.display_name
        row.share = account.share
        row.guaranteed_gpus = account.guaranteed_gpus
        row.borrowing_limit_gpus = account.borrowing_limit_gpus
        row.may_burst = account.may_burst
        self.session.flush()

    def set_budget(self, name: str, period: str, budget: Credits | None) -> None:
        account_id = self.id_of(name)
        row = self.session.get(BudgetRow, (account_id, period))
        if budget is None:
            if row is not None:
                self.session.delete(row)
        elif row is None:
            self.session.add(
                BudgetRow(account_id=account_id, period=period, budget_milli=budget.milli)
            )
        else:
            row.budget_milli = budget.milli
        self.session.flush()

    def auto_approve_threshold(self, program: str) -> Credits | None:
        value = self.session.scalar(
            select(AccountRow.auto_approve_milli).where(AccountRow.name == program)
        )
        return Credits(value) if value is not None else None

    def set_auto_approve_threshold(self, program: str, threshold: Credits | None) -> None:
        row = self.session.get(AccountRow, self.id_of(program))
        assert row is not None
        row.auto_approve_milli = threshold.milli if threshold is not None else None
        self.session.flush()


@dataclass(frozen=True, slots=True)
class Member:
    user: str
    project: str
    role: str


class PeopleRepository:
    """Users, project memberships (researcher / pi) and program managers."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add_user(self, name: str, display_name: str = "", email: str = "") -> None:
        self.session.add(UserRow(name=name, display_name=display_name, email=email))
        self.session.flush()

    def _user_id(self, name: str) -> int:
        found = self.session.scalar(select(UserRow.id).where(UserRow.name == name))
        if found is None:
            raise NotFound(f"unknown user {name!r}")
        return found

    def add_member(self, user: str, project: str, role: str) -> None:
        self.session.add(
            MembershipRow(
                user_id=self._user_id(user),
                project_id=AccountRepository(self.session).id_of(project),
                role=role,
            )
        )
        self.session.flush()

    def add_program_manager(self, user: str, program: str) -> None:
        self.session.add(
            ProgramManagerRow(
                user_id=self._user_id(user),
                program_id=AccountRepository(self.session).id_of(program),
            )
        )
        self.session.flush()

    def remove_member(self, user: str, project: str) -> str:
        """Remove a membership; returns the role it held."""
        row = self.session.get(
            MembershipRow, (self._user_id(user), AccountRepository(self.session).id_of(project))
        )
        if row is None:
            raise NotFound(f"{user} is not a member of {project}")
        role = row.role
        self.session.delete(row)
        self.session.flush()
        return role

    def set_member_role(self, user: str, project: str, role: str) -> str:
        """Change a member's role; returns the role they held."""
        row = self.session.get(
            MembershipRow, (self._user_id(user), AccountRepository(self.session).id_of(project))
        )
        if row is None:
            raise NotFound(f"{user} is not a member of {project}")
        before = row.role
        row.role = role
        self.session.flush()
        return before

    def remove_program_manager(self, user: str, program: str) -> None:
        row = self.session.get(
            ProgramManagerRow,
            (self._user_id(user), AccountRepository(self.session).id_of(program)),
        )
        if row is None:
            raise NotFound(f"{user} does not manage {program}")
        self.session.delete(row)
        self.session.flush()

    def users(self) -> list[tuple[str, str, str]]:
        """(name, display name, email) of every user."""
        query = select(UserRow.name, UserRow.display_name, UserRow.email).order_by(UserRow.name)
        return [(name, display, email) for name, display, email in self.session.execute(query)]

    def members(self) -> list[Member]:
        query = (
            select(UserRow.name, AccountRow.name, MembershipRow.role)
            .join(UserRow, UserRow.id == MembershipRow.user_id)
            .join(AccountRow, AccountRow.id == MembershipRow.project_id)
            .order_by(AccountRow.name, UserRow.name)
        )
        return [Member(user, project, role) for user, project, role in self.session.execute(query)]

    def program_managers(self, program: str) -> list[str]:
        query = (
            select(UserRow.name)
            .join(ProgramManagerRow, ProgramManagerRow.user_id == UserRow.id)
            .join(AccountRow, AccountRow.id == ProgramManagerRow.program_id)
            .where(AccountRow.name == program)
            .order_by(UserRow.name)
        )
        return list(self.session.scalars(query))

    def members_of(self, project: str) -> list[Member]:
        """The members of one project, by name."""
        query = (
            select(UserRow.name, MembershipRow.role)
            .join(UserRow, UserRow.id == MembershipRow.user_id)
            .join(AccountRow, AccountRow.id == MembershipRow.project_id)
            .where(AccountRow.name == project)
            .order_by(UserRow.name)
        )
        return [Member(user, project, role) for user, role in self.session.execute(query)]

    def has_user(self, name: str) -> bool:
        return self.session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None

    def user(self, name: str) -> tuple[str, str, str]:
        """(name, display name, email) of one user."""
        found = self.session.execute(
            select(UserRow.name, UserRow.display_name, UserRow.email).where(UserRow.name == name)
        ).first()
        if found is None:
            raise NotFound(f"unknown user {name!r}")
        return found[0], found[1], found[2]

    def search_users(
        self, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[tuple[str, str, str]], int]:
        """A page of (name, display name, email) by name, and how many users there are."""
        total = self.session.scalar(select(func.count(UserRow.id))) or 0
        query = (
            select(UserRow.name, UserRow.display_name, UserRow.email)
            .order_by(UserRow.name)
            .offset(offset)
            .limit(limit)
        )
        found = [(name, display, email) for name, display, email in self.session.execute(query)]
        return found, total


class ClusterRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, cluster: ClusterSpec) -> None:
        known = set(FlavorRepository(self.session).all())
        for item in cluster.inventory:
            if item.flavor not in known:
                raise NoSuchFlavor(item.flavor, known)
        self.session.add(
            ClusterRow(
                name=cluster.name,
                backend=cluster.backend.value,
                address=cluster.address,
                site=cluster.site.value,
                price_multiplier_milli=cluster.price_multiplier_milli,
                tenancy=cluster.tenancy.value,
                dedicated_to=cluster.dedicated_to,
                provisioning_deadline_seconds=cluster.provisioning_deadline_seconds,
                provisioning_class=cluster.provisioning_class,
            )
        )
        self.session.flush()
        accounts = AccountRepository(self.session)
        kinds = dict(self.session.execute(select(AccountRow.name, AccountRow.kind)).all())
        for program, _ in cluster.burst_budgets:
            if kinds.get(program) != AccountKind.PROGRAM.value:
                raise InvalidInput(
                    f"cluster {cluster.name}: a burst budget is for a program; "
                    f"{program!r} is not one"
                )
        self.session.add_all(
            BurstBudgetRow(
                cluster=cluster.name, program_id=accounts.id_of(program), budget_milli=budget.milli
            )
            for program, budget in cluster.burst_budgets
        )
        self.session.add_all(
            NodeGroupRow(
                cluster=cluster.name,
                flavor=item.flavor,
                nodes=item.nodes,
                gpus_per_node=item.gpus_per_node,
            )
            for item in cluster.inventory
        )
        self.session.flush()

    def set_burst_budget(self, cluster: str, program: str, budget: Credits | None) -> None:
        """Cap what ``program`` holds and spends at the burst target ``cluster`` in a period;
        ``None`` takes the cap away."""
        key = (cluster, AccountRepository(self.session).id_of(program))
        row = self.session.get(BurstBudgetRow, key)
        if budget is None:
            if row is not None:
                self.session.delete(row)
        elif row is None:
            self.session.add(
                BurstBudgetRow(cluster=cluster, program_id=key[1], budget_milli=budget.milli)
            )
        else:
            row.budget_milli = budget.milli
        self.session.flush()

    def all(self) -> list[ClusterSpec]:
        groups: dict[str, list[Inventory]] = {}
        for group in self.session.scalars(select(NodeGroupRow).order_by(NodeGroupRow.flavor)):
            groups.setdefault(group.cluster, []).append(
                Inventory(group.flavor, group.nodes, group.gpus_per_node)
            )
        budgets: dict[str, list[tuple[str, Credits]]] = {}
        burst = select(BurstBudgetRow.cluster, AccountRow.name, BurstBudgetRow.budget_milli).join(
            AccountRow, AccountRow.id == BurstBudgetRow.program_id
        )
        for cluster, program, milli in self.session.execute(burst.order_by(AccountRow.name)):
            budgets.setdefault(cluster, []).append((program, Credits(milli)))
        return [
            ClusterSpec(
                name=row.name,
                backend=BackendKind(row.backend),
                site=SiteKind(row.site),
                inventory=tuple(groups.get(row.name, [])),
                address=row.address,
                price_multiplier_milli=row.price_multiplier_milli,
                tenancy=Tenancy(row.tenancy),
                dedicated_to=row.dedicated_to,
                provisioning_deadline_seconds=row.provisioning_deadline_seconds,
                provisioning_class=row.provisioning_class,
                burst_budgets=tuple(budgets.get(row.name, ())),
            )
            for row in self.session.scalars(select(ClusterRow).order_by(ClusterRow.name))
        ]


@dataclass(frozen=True, slots=True)
class Entry:
    """A stored ledger entry: the posting plus its id and time."""

    id: int
    at: datetime
    posting: Posting


class LedgerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._ids: dict[str, int] | None = None
        self._names: dict[int, str] | None = None

    def last_id(self) -> int:
        """The id of the newest entry (0 with none): it changes whenever any balance does."""
        return int(self.session.scalar(select(func.max(LedgerEntryRow.id))) or 0)

    def _account_ids(self) -> dict[str, int]:
        if self._ids is None:
            self._ids = AccountRepository(self.session).ids()
            self._names = {account_id: name for name, account_id in self._ids.items()}
        return self._ids

    def _account_name(self, account_id: int | None) -> str | None:
        if account_id is None:
            return None
        self._account_ids()
        assert self._names is not None
        if account_id not in self._names:
            self._ids = None
            self._account_ids()
        return self._names[account_id]

    def _account_id(self, name: str | None) -> int | None:
        if name is None:
            return None
        ids = self._account_ids()
        if name not in ids:
            self._ids = None
            ids = self._account_ids()
        if name not in ids:
            raise NoSuchAccount(name)
        return ids[name]

    def append(self, postings: Sequence[Posting], at: datetime) -> list[int]:
        """Insert the entries (many rows per statement) and return their ids, in order."""
        if not postings:
            return []
        added = self.session.execute(
            insert(LedgerEntryRow).returning(LedgerEntryRow.id, sort_by_parameter_order=True),
            self._rows(postings, at),
        )
        return [int(entry_id) for entry_id in added.scalars()]

    def append_many(self, postings: Sequence[Posting], at: datetime) -> None:
        """``append`` for a cycle's thousands of entries, whose ids nobody asks for."""
        insert_rows(self.session, LEDGER, self._rows(postings, at))

    def _rows(self, postings: Sequence[Posting], at: datetime) -> list[dict[str, object]]:
        return [
            {
                "at": at,
                "kind": posting.kind.value,
                "period": posting.period,
                "funder": posting.funder,
                "source_bucket": posting.source.bucket.value,
                "source_account_id": self._account_id(posting.source.account),
                "source_job": posting.source.job,
                "target_bucket": posting.target.bucket.value,
                "target_account_id": self._account_id(posting.target.account),
                "target_job": posting.target.job,
                "amount_milli": posting.amount.milli,
                "actor": posting.actor,
                "reason": posting.reason,
                "allocation_id": posting.allocation,
                "reverses_id": posting.reverses,
            }
            for posting in postings
        ]

    def balances(
        self, period: str | None = None, accounts: Iterable[str] | None = None
    ) -> Balances:
        """Balances per (period, funder, pocket), summed from the entries in the database."""
        incoming = select(
            Entries.period,
            Entries.funder,
            Entries.target_bucket.label("bucket"),
            Entries.target_account_id.label("account_id"),
            Entries.target_job.label("job"),
            Entries.amount_milli.label("amount"),
        )
        outgoing = select(
            Entries.period,
            Entries.funder,
            Entries.source_bucket,
            Entries.source_account_id,
            Entries.source_job,
            (literal(0) - Entries.amount_milli),
        )
        if period is not None:
            incoming = incoming.where(Entries.period == period)
            outgoing = outgoing.where(Entries.period == period)
        if accounts is not None:
            ids = [self._account_id(name) for name in accounts]
            incoming = incoming.where(Entries.target_account_id.in_(ids))
            outgoing = outgoing.where(Entries.source_account_id.in_(ids))
        moves = union_all(incoming, outgoing).subquery()
        query = select(
            moves.c.period,
            moves.c.funder,
            moves.c.bucket,
            moves.c.account_id,
            moves.c.job,
            func.sum(moves.c.amount),
        ).group_by(moves.c.period, moves.c.funder, moves.c.bucket, moves.c.account_id, moves.c.job)
        amounts = {
            (row_period, funder, Pocket(Bucket(bucket), self._account_name(account_id), job)): int(
                total
            )
            for row_period, funder, bucket, account_id, job, total in self.session.execute(query)
            if int(total) != 0 or bucket == Bucket.FUNDER
        }
        return Balances.from_amounts(amounts)

    def _posting(self, row: LedgerEntryRow) -> Posting:
        return Posting(
            kind=EntryKind(row.kind),
            period=row.period,
            funder=row.funder,
            source=Pocket(
                Bucket(row.source_bucket), self._account_name(row.source_account_id), row.source_job
            ),
            target=Pocket(
                Bucket(row.target_bucket), self._account_name(row.target_account_id), row.target_job
            ),
            amount=Credits(row.amount_milli),
            actor=row.actor,
            reason=row.reason,
            allocation=row.allocation_id,
            reverses=row.reverses_id,
        )

    def get(self, entry_id: int) -> Entry:
        row = self.session.get(LedgerEntryRow, entry_id)
        if row is None:
            raise NotFound(f"no ledger entry {entry_id}")
        return Entry(row.id, as_utc(row.at), self._posting(row))

    def is_reversed(self, entry_id: int) -> bool:
        query = select(LedgerEntryRow.id).where(LedgerEntryRow.reverses_id == entry_id)
        return self.session.scalar(query) is not None

    def entries(
        self,
        period: str | None = None,
        account: str | None = None,
        job: str | None = None,
        kinds: Iterable[EntryKind] = (),
        after_id: int = 0,
        limit: int = 100,
    ) -> list[Entry]:
        """A page of entries in id order, filtered."""
        query = select(Entries).where(Entries.id > after_id).order_by(Entries.id).limit(limit)
        if period is not None:
            query = query.where(Entries.period == period)
        if account is not None:
            account_id = self._account_id(account)
            query = query.where(
                (Entries.source_account_id == account_id)
                | (Entries.target_account_id == account_id)
            )
        if job is not None:
            query = query.where((Entries.source_job == job) | (Entries.target_job == job))
        kind_values = [kind.value for kind in kinds]
        if kind_values:
            query = query.where(Entries.kind.in_(kind_values))
        return [
            Entry(row.id, as_utc(row.at), self._posting(row)) for row in self.session.scalars(query)
        ]

    def search(
        self,
        *,
        within: Iterable[str] | None = None,
        account: str | None = None,
        job: str | None = None,
        kinds: Iterable[EntryKind] = (),
        period: str | None = None,
        funder: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Entry], int]:
        """A page of entries, newest first, and how many match in all.

        ``within`` keeps entries that move credits into or out of one of those accounts
        (``None``: every entry); ``account`` keeps those touching that one account; ``since``
        and ``until`` (UTC) keep those made in ``[since, until)``.
        """
        query = select(Entries)
        if within is not None:
            ids = [self._account_id(name) for name in within]
            query = query.where(
                Entries.source_account_id.in_(ids) | Entries.target_account_id.in_(ids)
            )
        if account is not None:
            account_id = self._account_id(account)
            query = query.where(
                (Entries.source_account_id == account_id)
                | (Entries.target_account_id == account_id)
            )
        if job is not None:
            query = query.where((Entries.source_job == job) | (Entries.target_job == job))
        kind_values = [kind.value for kind in kinds]
        if kind_values:
            query = query.where(Entries.kind.in_(kind_values))
        if period is not None:
            query = query.where(Entries.period == period)
        if funder is not None:
            query = query.where(Entries.funder == funder)
        if since is not None:
            query = query.where(Entries.at >= since)
        if until is not None:
            query = query.where(Entries.at < until)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(Entries.id.desc()).offset(offset).limit(limit)
        found = [
            Entry(row.id, as_utc(row.at), self._posting(row)) for row in self.session.scalars(page)
        ]
        return found, total

    def usage_charges(self, since: datetime) -> list[tuple[str, datetime, int]]:
        """(project, time, milli) of charges and refunds since ``since``, for fair share."""
        query = select(
            Entries.kind,
            Entries.target_account_id,
            Entries.source_account_id,
            Entries.at,
            Entries.amount_milli,
        ).where(
            Entries.at >= since, Entries.kind.in_([EntryKind.CHARGE.value, EntryKind.REFUND.value])
        )
        found: list[tuple[str, datetime, int]] = []
        for kind, target, source, at, amount in self.session.execute(query):
            if kind == EntryKind.CHARGE:
                found.append((self._account_name(target) or "", as_utc(at), amount))
            else:
                found.append((self._account_name(source) or "", as_utc(at), -amount))
        return found


@dataclass(frozen=True, slots=True)
class StoredRequest:
    """An allocation request as stored: its id, who filed it and when it last changed."""

    id: int
    request: AllocationRequest
    created_by: str
    created_at: datetime
    updated_at: datetime


class AllocationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, request: AllocationRequest, created_by: str, at: datetime) -> int:
        row = AllocationRequestRow(
            project_id=AccountRepository(self.session).id_of(request.project),
            created_by=created_by,
            created_at=at,
        )
        self._fill(row, request, at)
        self.session.add(row)
        self.session.flush()
        return row.id

    def _fill(self, row: AllocationRequestRow, request: AllocationRequest, at: datetime) -> None:
        row.period = request.period
        row.state = request.state.value
        row.requested_milli = request.requested.milli
        row.justification = request.justification
        row.flavors = list(request.flavors)
        row.tranche_percents = list(request.tranche_percents)
        row.awarded_milli = request.awarded.milli if request.awarded is not None else None
        row.reviewer = request.reviewer
        row.reason = request.reason
        row.updated_at = at

    def save(self, request_id: int, request: AllocationRequest, at: datetime) -> None:
        row = self._row(request_id)
        self._fill(row, request, at)
        self.session.flush()

    def _row(self, request_id: int) -> AllocationRequestRow:
        row = self.session.get(AllocationRequestRow, request_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no allocation request {request_id}")
        return row

    def get(self, request_id: int) -> AllocationRequest:
        row = self._row(request_id)
        project = self.session.get(AccountRow, row.project_id)
        assert project is not None
        return self._request(row, project.name)

    def find(
        self, project: str | None = None, state: RequestState | None = None
    ) -> list[tuple[int, AllocationRequest]]:
        """Requests in the order they were made, with their ids."""
        query = (
            select(AllocationRequestRow, AccountRow.name)
            .join(AccountRow, AccountRow.id == AllocationRequestRow.project_id)
            .order_by(AllocationRequestRow.id)
        )
        if project is not None:
            query = query.where(AccountRow.name == project)
        if state is not None:
            query = query.where(AllocationRequestRow.state == state.value)
        return [(row.id, self._request(row, name)) for row, name in self.session.execute(query)]

    def auto_approved(self, project: str, period: str) -> Credits:
        """Credits the system approved on its own for ``project`` in ``period``, all requests."""
        total = self.session.scalar(
            select(func.coalesce(func.sum(AllocationRequestRow.awarded_milli), 0))
            .join(AccountRow, AccountRow.id == AllocationRequestRow.project_id)
            .where(
                AccountRow.name == project,
                AllocationRequestRow.period == period,
                AllocationRequestRow.reviewer == AUTO_APPROVER,
            )
        )
        return Credits(int(total or 0))

    def _request(self, row: AllocationRequestRow, project: str) -> AllocationRequest:
        return AllocationRequest(
            project=project,
            period=row.period,
            requested=Credits(row.requested_milli),
            justification=row.justification,
            flavors=tuple(row.flavors),
            tranche_percents=tuple(row.tranche_percents),
            state=RequestState(row.state),
            awarded=Credits(row.awarded_milli) if row.awarded_milli is not None else None,
            reviewer=row.reviewer,
            reason=row.reason,
        )

    def add_tranches(self, request_id: int, amounts: Sequence[Credits]) -> None:
        self.session.add_all(
            TrancheRow(request_id=request_id, seq=seq, amount_milli=amount.milli)
            for seq, amount in enumerate(amounts, start=1)
        )
        self.session.flush()

    def tranches(self, request_id: int) -> list[tuple[int, Credits, datetime | None]]:
        rows = self.session.scalars(
            select(TrancheRow).where(TrancheRow.request_id == request_id).order_by(TrancheRow.seq)
        )
        return [
            (
                row.seq,
                Credits(row.amount_milli),
                as_utc(row.released_at) if row.released_at else None,
            )
            for row in rows
        ]

    def mark_released(self, request_id: int, seq: int, by: str, at: datetime) -> None:
        row = self.session.get(TrancheRow, (request_id, seq))
        if row is None:
            raise NotFound(f"allocation request {request_id} has no tranche {seq}")
        row.released_at = at
        row.released_by = by
        self.session.flush()

    def _stored(self, row: AllocationRequestRow, project: str) -> StoredRequest:
        return StoredRequest(
            id=row.id,
            request=self._request(row, project),
            created_by=row.created_by,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
        )

    def stored(self, request_id: int) -> StoredRequest:
        """One request with who filed it and when, read without a lock."""
        found = self.session.execute(
            select(AllocationRequestRow, AccountRow.name)
            .join(AccountRow, AccountRow.id == AllocationRequestRow.project_id)
            .where(AllocationRequestRow.id == request_id)
        ).first()
        if found is None:
            raise NotFound(f"no allocation request {request_id}")
        return self._stored(found[0], found[1])

    def search(
        self,
        *,
        projects: Sequence[str] | None = None,
        states: Iterable[RequestState] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[StoredRequest], int]:
        """A page of requests, newest first, and how many match; ``projects=None`` is all."""
        query = select(AllocationRequestRow, AccountRow.name).join(
            AccountRow, AccountRow.id == AllocationRequestRow.project_id
        )
        if projects is not None:
            query = query.where(AccountRow.name.in_(list(projects)))
        if states is not None:
            query = query.where(AllocationRequestRow.state.in_([state.value for state in states]))
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(AllocationRequestRow.id.desc()).offset(offset).limit(limit)
        found = [self._stored(row, name) for row, name in self.session.execute(page)]
        return found, total


def maybe_utc(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
