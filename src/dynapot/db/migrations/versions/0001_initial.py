"""initial schema: the tables of the original design

Revision ID: 0001
Revises:
Create Date: 2026-11-27 23:33:11.550686
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "honeypot_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("src_ip", sa.String(length=45), nullable=False),
        sa.Column("src_port", sa.Integer(), nullable=True),
        sa.Column("dst_ip", sa.String(length=45), nullable=False),
        sa.Column("dst_port", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("attacker_os", sa.String(length=255), nullable=True),
        sa.Column("scan_tool", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_honeypot_events")),
    )
    with op.batch_alter_table("honeypot_events", schema=None) as batch_op:
        batch_op.create_index("ix_honeypot_events_dst_time", ["dst_ip", "time"], unique=False)
        batch_op.create_index("ix_honeypot_events_src_time", ["src_ip", "time"], unique=False)
        batch_op.create_index(batch_op.f("ix_honeypot_events_time"), ["time"], unique=False)

    op.create_table(
        "operating_systems",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("vendor", sa.String(length=100), nullable=True),
        sa.Column("family", sa.String(length=100), nullable=True),
        sa.Column("generation", sa.String(length=100), nullable=True),
        sa.Column("device_type", sa.String(length=100), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operating_systems")),
        sa.UniqueConstraint("name", name=op.f("uq_operating_systems_name")),
    )
    op.create_table(
        "service_scripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("script", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_scripts")),
        sa.UniqueConstraint("protocol", "service", name="uq_service_scripts_proto_service"),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("honeypot_ip", sa.String(length=45), nullable=False),
        sa.Column("src_ip", sa.String(length=45), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("uid", sa.Integer(), nullable=True),
        sa.Column("fd", sa.Integer(), nullable=True),
        sa.Column("command", sa.String(length=255), nullable=True),
        sa.Column("data", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_honeypot_ip"), ["honeypot_ip"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_time"), ["time"], unique=False)

    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("mac_vendor", sa.String(length=100), nullable=True),
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("os_id", sa.Integer(), nullable=True),
        sa.Column("os_detail", sa.String(length=255), nullable=True),
        sa.Column("is_virtual", sa.Boolean(), nullable=False),
        sa.Column("personality", sa.String(length=255), nullable=True),
        sa.Column("tool", sa.String(length=32), nullable=False),
        sa.Column("reliability", sa.Integer(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["os_id"],
            ["operating_systems.id"],
            name=op.f("fk_hosts_os_id_operating_systems"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("ip", name=op.f("uq_hosts_ip")),
    )
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hosts_last_seen"), ["last_seen"], unique=False)

    op.create_table(
        "host_os_guesses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("tool", sa.String(length=32), nullable=False),
        sa.Column("os_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=255), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_host_os_guesses_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["os_id"],
            ["operating_systems.id"],
            name=op.f("fk_host_os_guesses_os_id_operating_systems"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_host_os_guesses")),
        sa.UniqueConstraint("host_id", "tool", name="uq_host_os_guesses_host_tool"),
    )
    op.create_table(
        "ports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=True),
        sa.Column("product", sa.String(length=255), nullable=True),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("extra_info", sa.String(length=255), nullable=True),
        sa.Column("tool", sa.String(length=32), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_ports_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ports")),
        sa.UniqueConstraint("host_id", "protocol", "port", name="uq_ports_host_proto_port"),
    )
    with op.batch_alter_table("ports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ports_host_id"), ["host_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ports_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ports_seen_at"))
        batch_op.drop_index(batch_op.f("ix_ports_host_id"))

    op.drop_table("ports")
    op.drop_table("host_os_guesses")
    with op.batch_alter_table("hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hosts_last_seen"))

    op.drop_table("hosts")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_time"))
        batch_op.drop_index(batch_op.f("ix_sessions_honeypot_ip"))

    op.drop_table("sessions")
    op.drop_table("service_scripts")
    op.drop_table("operating_systems")
    with op.batch_alter_table("honeypot_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_honeypot_events_time"))
        batch_op.drop_index("ix_honeypot_events_src_time")
        batch_op.drop_index("ix_honeypot_events_dst_time")

    op.drop_table("honeypot_events")
