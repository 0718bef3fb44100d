"""users.disabled_at: a disabled account is its own state, not a lockout that never ends

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 07:05:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: How the accounts of 0007-0009 marked a disabled account: locked until the end of time.
_FOREVER = datetime(9999, 12, 31, tzinfo=UTC)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
    users = sa.table(
        "users",
        sa.column("locked_until", sa.DateTime(timezone=True)),
        sa.column("disabled_at", sa.DateTime(timezone=True)),
    )
    op.execute(
        users.update()
        .where(users.c.locked_until >= _FOREVER)
        .values(disabled_at=datetime.now(UTC), locked_until=None)
    )


def downgrade() -> None:
    users = sa.table(
        "users",
        sa.column("locked_until", sa.DateTime(timezone=True)),
        sa.column("disabled_at", sa.DateTime(timezone=True)),
    )
    op.execute(users.update().where(users.c.disabled_at.is_not(None)).values(locked_until=_FOREVER))
    with op.batch_alter_table("users") as batch:
        batch.drop_column("disabled_at")
