"""plan_reviews: plans held for an admin's review (planner.apply = "hold") and their approvals

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_reviews")),
    )
    op.create_index(op.f("ix_plan_reviews_network"), "plan_reviews", ["network"])
    op.create_index(op.f("ix_plan_reviews_status"), "plan_reviews", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_plan_reviews_status"), table_name="plan_reviews")
    op.drop_index(op.f("ix_plan_reviews_network"), table_name="plan_reviews")
    op.drop_table("plan_reviews")
