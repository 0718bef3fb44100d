"""event_rollup, event_rollup_mark: the honeyd log summed per hour for fast reports

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("src_ip", sa.String(length=45), nullable=False),
        sa.Column("dst_ip", sa.String(length=45), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("dst_port", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attacker_os", sa.String(length=255), nullable=True),
        sa.Column("scan_tool", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_rollup")),
        sa.UniqueConstraint(
            "hour", "src_ip", "dst_ip", "protocol", "dst_port", "kind", name=op.f("uq_event_rollup_hour")
        ),
    )
    op.create_table(
        "event_rollup_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("expired_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_rollup_mark")),
    )


def downgrade() -> None:
    op.drop_table("event_rollup_mark")
    op.drop_table("event_rollup")
