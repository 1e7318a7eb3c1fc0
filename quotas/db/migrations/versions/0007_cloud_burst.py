"""Cloud burst: which projects may burst, burst targets' provisioning and budgets, the burst
targets each job must not be placed on again, and flavors that only jobs naming them take.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("may_burst", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("clusters") as batch:
        batch.add_column(
            sa.Column(
                "provisioning_deadline_seconds",
                sa.Integer(),
                nullable=False,
                server_default="900",
            )
        )
        batch.add_column(
            sa.Column(
                "provisioning_class", sa.String(length=253), nullable=False, server_default=""
            )
        )
    with op.batch_alter_table("flavors") as batch:
        batch.add_column(
            sa.Column("named_only", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("avoid_clusters", sa.JSON(), nullable=False, server_default="[]")
        )
    op.create_table(
        "burst_budgets",
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("budget_milli", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("budget_milli >= 0", name=op.f("ck_burst_budgets_budget_not_negative")),
        sa.ForeignKeyConstraint(
            ["cluster"], ["clusters.name"], name=op.f("fk_burst_budgets_cluster_clusters")
        ),
        sa.ForeignKeyConstraint(
            ["program_id"], ["accounts.id"], name=op.f("fk_burst_budgets_program_id_accounts")
        ),
        sa.PrimaryKeyConstraint("cluster", "program_id", name=op.f("pk_burst_budgets")),
    )


def downgrade() -> None:
    op.drop_table("burst_budgets")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("avoid_clusters")
    with op.batch_alter_table("flavors") as batch:
        batch.drop_column("named_only")
    with op.batch_alter_table("clusters") as batch:
        batch.drop_column("provisioning_class")
        batch.drop_column("provisioning_deadline_seconds")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("may_burst")
