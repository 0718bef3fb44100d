"""settings_requests: settings changes the web child hands to the daemon, which writes the file as root

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "settings_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settings_requests")),
    )
    op.create_index(op.f("ix_settings_requests_status"), "settings_requests", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_settings_requests_status"), table_name="settings_requests")
    op.drop_table("settings_requests")
