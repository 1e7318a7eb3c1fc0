"""Multi-tenant safety: cluster tenancy, priority grants and the records that enforce them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Item 3: cluster tenancy (quotas/inventory.py): shared, dedicated to an account, per job.
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tenancy", sa.String(length=16), nullable=False, server_default="shared")
        )
        batch_op.add_column(
            sa.Column("dedicated_to", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.create_check_constraint(
            batch_op.f("ck_clusters_tenancy_known"), "tenancy IN ('shared', 'dedicated', 'per_job')"
        )

    # Item 7: priority grants (quotas/priorities.py): urgent work needs one per project.
    op.create_table(
        "priority_grants",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "priority IN ('urgent')", name=op.f("ck_priority_grants_priority_granted")
        ),
        sa.CheckConstraint(
            "expires_at IS NULL OR expires_at > granted_at",
            name=op.f("ck_priority_grants_expires_after_granted"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["accounts.id"], name=op.f("fk_priority_grants_project_id_accounts")
        ),
        sa.PrimaryKeyConstraint("project_id", "priority", name=op.f("pk_priority_grants")),
    )

    # Item 10: package storage quotas (quotas/packages.py): each upload is charged to a
    # project; packages from before charge none. Cleanup finds old packages by uploaded_at.
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("project_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_packages_project_id_accounts"), "accounts", ["project_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_packages_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_packages_uploaded_at"), ["uploaded_at"], unique=False)


def downgrade() -> None:
    # Item 3: cluster tenancy.
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_clusters_tenancy_known"), type_="check")
        batch_op.drop_column("dedicated_to")
        batch_op.drop_column("tenancy")

    # Item 10: package storage quotas.
    with op.batch_alter_table("packages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_packages_uploaded_at"))
        batch_op.drop_index(batch_op.f("ix_packages_project_id"))
        batch_op.drop_constraint(batch_op.f("fk_packages_project_id_accounts"), type_="foreignkey")
        batch_op.drop_column("project_id")

    # Item 7: priority grants.
    op.drop_table("priority_grants")
