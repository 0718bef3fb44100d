"""sessions: what a Sebek v3 record carries (ppid, inode, type, counter), lost records, wider ids

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        for name in ("pid", "uid", "fd"):  # unsigned 32-bit values (uid 4294967295) overflow INTEGER
            batch_op.alter_column(
                name, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=True
            )
        batch_op.add_column(sa.Column("ppid", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("inode", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("type", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("counter", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("lost_before", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_sessions_src_ip"), ["src_ip"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_src_ip"))
        for name in ("lost_before", "counter", "type", "inode", "ppid"):
            batch_op.drop_column(name)
        for name in ("pid", "uid", "fd"):
            batch_op.alter_column(
                name, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=True
            )
