"""status reports: the last report of each peer's agent

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_reports",
        sa.Column("peer_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["peer_id"], ["peers.id"], name=op.f("fk_status_reports_peer_id_peers"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("peer_id", name=op.f("pk_status_reports")),
    )


def downgrade() -> None:
    op.drop_table("status_reports")
