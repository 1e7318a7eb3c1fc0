"""Node outages: nodes a cluster's backend reports down (cordoned, NotReady), for how long.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # scheduler/outages.py: one row per stretch of time a number of nodes of one (cluster,
    # flavor) is down; a change in that number closes the row and opens another. No foreign
    # keys to the inventory: the history outlives a cluster's node groups being changed.
    op.create_table(
        "node_outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster", sa.String(length=64), nullable=False),
        sa.Column("flavor", sa.String(length=64), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("nodes > 0", name=op.f("ck_node_outages_nodes_positive")),
        sa.CheckConstraint("gpus > 0", name=op.f("ck_node_outages_gpus_positive")),
        sa.CheckConstraint(
            "until IS NULL OR until >= since", name=op.f("ck_node_outages_until_after_since")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_outages")),
    )
    # The open outages are those with no ``until``; the cycle reads them every pass.
    op.create_index("ix_node_outages_open", "node_outages", ["until", "cluster", "flavor"])
    # The utilisation report reads those overlapping a window.
    op.create_index("ix_node_outages_since", "node_outages", ["since"])


def downgrade() -> None:
    op.drop_index("ix_node_outages_since", table_name="node_outages")
    op.drop_index("ix_node_outages_open", table_name="node_outages")
    op.drop_table("node_outages")
