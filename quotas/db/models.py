"""SQLAlchemy models of the books.

Money columns are integer milli-credits (``*_milli``). ``ledger_entries`` is append-only: the
migration installs triggers on PostgreSQL and SQLite that refuse any UPDATE or DELETE of it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Name = String(64)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class FlavorRow(Base):
    __tablename__ = "flavors"

    name: Mapped[str] = mapped_column(Name, primary_key=True)
    memory_gb: Mapped[int] = mapped_column(Integer)
    relative_throughput: Mapped[float] = mapped_column(Float)
    ray_resource: Mapped[str] = mapped_column(Name)
    kubernetes_resource: Mapped[str] = mapped_column(String(128))
    throughput_source: Mapped[str] = mapped_column(Text, default="")
    named_only: Mapped[bool] = mapped_column(Boolean, server_default=false())

    __table_args__ = (
        CheckConstraint("memory_gb > 0", name="memory_positive"),
        CheckConstraint("relative_throughput > 0", name="throughput_positive"),
    )


class RateCardRow(Base):
    __tablename__ = "rate_cards"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    effective_from: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(Name)
    note: Mapped[str] = mapped_column(Text, default="")


class ExchangeRateRow(Base):
    __tablename__ = "exchange_rates"

    version: Mapped[int] = mapped_column(ForeignKey("rate_cards.version"), primary_key=True)
    flavor: Mapped[str] = mapped_column(ForeignKey("flavors.name"), primary_key=True)
    milli_per_gpu_hour: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("milli_per_gpu_hour > 0", name="rate_positive"),)


class PeriodRow(Base):
    __tablename__ = "periods"

    name: Mapped[str] = mapped_column(Name, primary_key=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    expired_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)


class FunderRow(Base):
    __tablename__ = "funders"

    name: Mapped[str] = mapped_column(Name, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    krw_per_credit: Mapped[int] = mapped_column(BigInteger, default=0)


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Name, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    share: Mapped[int] = mapped_column(Integer, default=1)
    guaranteed_gpus: Mapped[int] = mapped_column(Integer, default=0)
    borrowing_limit_gpus: Mapped[int | None] = mapped_column(Integer)
    auto_approve_milli: Mapped[int | None] = mapped_column(BigInteger)
    """Programs: requests up to this many milli-credits are approved on submission."""
    may_burst: Mapped[bool] = mapped_column(Boolean, server_default=false())
    """Projects: whether their jobs may burst to cloud capacity."""

    __table_args__ = (
        CheckConstraint("share >= 0", name="share_not_negative"),
        CheckConstraint("guaranteed_gpus >= 0", name="guarantee_not_negative"),
        CheckConstraint(
            "kind IN ('pool', 'program', 'organization', 'project')", name="kind_known"
        ),
    )


class BudgetRow(Base):
    __tablename__ = "account_budgets"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    period: Mapped[str] = mapped_column(ForeignKey("periods.name"), primary_key=True)
    budget_milli: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("budget_milli >= 0", name="budget_not_negative"),)


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Name, unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")


class MembershipRow(Base):
    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))

    __table_args__ = (CheckConstraint("role IN ('researcher', 'pi')", name="role_known"),)


class ProgramManagerRow(Base):
    __tablename__ = "program_managers"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)


class PriorityGrantRow(Base):
    """A project may submit work of a priority class above ``normal`` (``quotas.priorities``),
    until ``expires_at`` when one is set. Revoking deletes the row; the audit log keeps both."""

    __tablename__ = "priority_grants"

    project_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    priority: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted_by: Mapped[str] = mapped_column(Name)
    granted_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("priority IN ('urgent')", name="priority_granted"),
        CheckConstraint(
            "expires_at IS NULL OR expires_at > granted_at", name="expires_after_granted"
        ),
    )


class ClusterRow(Base):
    __tablename__ = "clusters"

    name: Mapped[str] = mapped_column(Name, primary_key=True)
    backend: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(500), default="")
    site: Mapped[str] = mapped_column(String(32))
    price_multiplier_milli: Mapped[int] = mapped_column(Integer, default=1000)
    tenancy: Mapped[str] = mapped_column(String(16), server_default="shared")
    dedicated_to: Mapped[str] = mapped_column(Name, server_default="")
    provisioning_deadline_seconds: Mapped[int] = mapped_column(Integer, server_default="900")
    provisioning_class: Mapped[str] = mapped_column(String(253), server_default="")

    __table_args__ = (
        CheckConstraint("tenancy IN ('shared', 'dedicated', 'per_job')", name="tenancy_known"),
    )


class BurstBudgetRow(Base):
    """A burst target's cap on what one program holds and spends there in a period."""

    __tablename__ = "burst_budgets"

    cluster: Mapped[str] = mapped_column(ForeignKey("clusters.name"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    budget_milli: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("budget_milli >= 0", name="budget_not_negative"),)


class NodeGroupRow(Base):
    __tablename__ = "cluster_node_groups"

    cluster: Mapped[str] = mapped_column(ForeignKey("clusters.name"), primary_key=True)
    flavor: Mapped[str] = mapped_column(ForeignKey("flavors.name"), primary_key=True)
    nodes: Mapped[int] = mapped_column(Integer)
    gpus_per_node: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("nodes > 0", name="nodes_positive"),
        CheckConstraint("gpus_per_node > 0", name="gpus_per_node_positive"),
    )


class AllocationRequestRow(Base):
    __tablename__ = "allocation_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    period: Mapped[str] = mapped_column(ForeignKey("periods.name"))
    state: Mapped[str] = mapped_column(String(16))
    requested_milli: Mapped[int] = mapped_column(BigInteger)
    justification: Mapped[str] = mapped_column(Text)
    flavors: Mapped[list[str]] = mapped_column(JSON)
    tranche_percents: Mapped[list[int]] = mapped_column(JSON)
    awarded_milli: Mapped[int | None] = mapped_column(BigInteger)
    reviewer: Mapped[str | None] = mapped_column(Name)
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(Name)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TrancheRow(Base):
    __tablename__ = "allocation_tranches"

    request_id: Mapped[int] = mapped_column(ForeignKey("allocation_requests.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    amount_milli: Mapped[int] = mapped_column(BigInteger)
    released_at: Mapped[datetime | None]
    released_by: Mapped[str | None] = mapped_column(Name)


class LedgerEntryRow(Base):
    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(ForeignKey("periods.name"))
    funder: Mapped[str] = mapped_column(ForeignKey("funders.name"))
    source_bucket: Mapped[str] = mapped_column(String(16))
    source_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    source_job: Mapped[str | None] = mapped_column(Name)
    target_bucket: Mapped[str] = mapped_column(String(16))
    target_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    target_job: Mapped[str | None] = mapped_column(Name)
    amount_milli: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    allocation_id: Mapped[int | None] = mapped_column(ForeignKey("allocation_requests.id"))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_entries.id"))

    __table_args__ = (
        CheckConstraint("amount_milli > 0", name="amount_positive"),
        UniqueConstraint("reverses_id", name="uq_ledger_entries_reverses_once"),
        Index("ix_ledger_entries_source", "period", "source_account_id"),
        Index("ix_ledger_entries_target", "period", "target_account_id"),
    )


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(Name, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    submitter: Mapped[str] = mapped_column(Name)
    name: Mapped[str] = mapped_column(String(128))
    entrypoint: Mapped[str] = mapped_column(Text)
    runtime_env: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    image: Mapped[str | None] = mapped_column(String(500))
    gpus: Mapped[int] = mapped_column(Integer)
    flavors: Mapped[list[str]] = mapped_column(JSON)
    min_memory_gb: Mapped[int | None] = mapped_column(Integer)
    time_limit_seconds: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(16))
    data_class: Mapped[str] = mapped_column(String(16))
    preemptible: Mapped[bool] = mapped_column(Boolean)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    cause: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    submitted_at: Mapped[datetime]
    admitted_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    cluster: Mapped[str | None] = mapped_column(Name)
    flavor: Mapped[str | None] = mapped_column(Name)
    rate_milli: Mapped[int | None] = mapped_column(BigInteger)
    rate_version: Mapped[int | None] = mapped_column(Integer)
    period: Mapped[str | None] = mapped_column(Name)
    hold_milli: Mapped[int | None] = mapped_column(BigInteger)
    charged_milli: Mapped[int] = mapped_column(BigInteger, default=0)
    charged_until: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    stop_cause: Mapped[str | None] = mapped_column(String(16))
    position: Mapped[int | None] = mapped_column(Integer)
    eta: Mapped[datetime | None]
    dispatch_failures: Mapped[int] = mapped_column(Integer, default=0)
    next_dispatch_at: Mapped[datetime | None]
    avoid_clusters: Mapped[list[str]] = mapped_column(JSON, server_default="[]")

    __table_args__ = (
        CheckConstraint("gpus > 0", name="gpus_positive"),
        CheckConstraint("time_limit_seconds > 0", name="time_limit_positive"),
    )


class JobEventRow(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[datetime]
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")


class RoleGrantRow(Base):
    """A pool-wide role (admin or auditor) held by a user."""

    __tablename__ = "role_grants"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class IdentityLinkRow(Base):
    """Maps an identity provider's subject (to a user) or group (to a role) onto gpupool's records.

    ``claim`` is ``sub`` or ``group``. A subject link names ``user_id``; a group link names a
    ``role`` and, for ``researcher``, ``pi`` and ``program_manager``, the ``account_id`` it holds
    that role in.
    """

    __tablename__ = "identity_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issuer: Mapped[str] = mapped_column(String(500))
    claim: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str | None] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))

    __table_args__ = (
        Index("ix_identity_links_lookup", "issuer", "claim", "value"),
        CheckConstraint("claim IN ('sub', 'group')", name="claim_known"),
    )


class ApiTokenRow(Base):
    """A personal access token: only its SHA-256 is kept; ``lookup`` finds it without a scan."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class InvitationRow(Base):
    """A one-time sign-in for a named user (``quotas.invitations``): only the SHA-256 of its
    secret is kept, ``lookup`` finds it without a scan; used, revoked or past ``expires_at`` it
    signs nobody in."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lookup: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    invited_by: Mapped[str] = mapped_column(Name)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEntryRow(Base):
    """Who changed what, when, with the record before and after. Append-only like the ledger."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class PackageRow(Base):
    """A ``working_dir`` or ``py_modules`` zip a Ray client uploaded, kept under the name the
    client chose (``gcs://_ray_pkg_<hash>.zip``) *for its uploader only*: names are easy to forge,
    so the same name uploaded by two users is two packages. ``sha256`` addresses the bytes: a job
    names its packages by it (see ``portal.rayjobs``), and dispatch forwards exactly those bytes.

    ``project_id`` is the project whose storage quota the upload is charged to
    (``quotas.packages``); packages uploaded before quotas existed are charged to none and count
    in the pool's total only."""

    __tablename__ = "packages"

    uploaded_by: Mapped[str] = mapped_column(Name, primary_key=True)
    uri: Mapped[str] = mapped_column(String(300), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_at: Mapped[datetime] = mapped_column(index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)

    __table_args__ = (Index("ix_packages_uploaded_by_sha256", "uploaded_by", "sha256"),)


class NodeOutageRow(Base):
    """``nodes`` nodes of ``flavor`` in ``cluster``, with ``gpus`` GPUs on them, were down (the
    backend did not report them up: cordoned, NotReady) from ``since`` until ``until`` (null while
    it lasts). A change in how many nodes are down closes the row and opens another, so the
    GPU-hours down are exact (``scheduler.outages``). No foreign keys to the inventory: the
    history outlives a cluster's node groups being changed."""

    __tablename__ = "node_outages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster: Mapped[str] = mapped_column(Name)
    flavor: Mapped[str] = mapped_column(Name)
    nodes: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer)
    since: Mapped[datetime]
    until: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint("nodes > 0", name="nodes_positive"),
        CheckConstraint("gpus > 0", name="gpus_positive"),
        CheckConstraint("until IS NULL OR until >= since", name="until_after_since"),
        Index("ix_node_outages_open", "until", "cluster", "flavor"),
        Index("ix_node_outages_since", "since"),
    )
