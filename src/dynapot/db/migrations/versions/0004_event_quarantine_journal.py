"""quarantined_events and event_journal: rows the database refused, and how far each journal is

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quarantined_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("src_ip", sa.String(length=45), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_events")),
    )
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantined_events_time"), ["time"], unique=False)

    op.create_table(
        "event_journal",
        sa.Column("journal_id", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.BigInteger(), nullable=False),
        sa.Column("journal_offset", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("journal_id", name=op.f("pk_event_journal")),
    )


def downgrade() -> None:
    op.drop_table("event_journal")
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_events_time"))
    op.drop_table("quarantined_events")
