"""seed service_scripts: which built-in emulator imitates which nmap service

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (protocol, nmap service name, emulator, description). The admin may edit or add rows;
# a service without a row is served as a plain open port that records what arrives.
SEED = [
    ("tcp", "ftp", "ftp", "FTP server: USER/PASS, listings, uploads kept"),
    ("tcp", "ssh", "ssh", "SSH server: password and key attempts, a believable shell"),
    ("tcp", "telnet", "telnet", "Telnet login and shell"),
    ("tcp", "smtp", "smtp", "SMTP server"),
    ("tcp", "http", "http", "HTTP server with OS-fitting headers"),
    ("tcp", "http-proxy", "http", "HTTP server on a proxy port"),
    ("tcp", "http-alt", "http", "HTTP server on an alternative port"),
    ("tcp", "https", "http", "HTTP server (TLS port)"),
    ("tcp", "ipp", "http", "printer's embedded web server (IPP)"),
    ("tcp", "netbios-ssn", "smb", "NetBIOS session service"),
    ("tcp", "microsoft-ds", "smb", "SMB over TCP"),
    ("tcp", "mysql", "mysql", "MySQL handshake and login"),
    ("tcp", "ms-wbt-server", "rdp", "RDP: X.224 connection confirm"),
    ("udp", "snmp", "snmp", "SNMP agent answering the public community"),
]


def upgrade() -> None:
    table = sa.table(
        "service_scripts",
        sa.column("protocol", sa.String),
        sa.column("service", sa.String),
        sa.column("script", sa.String),
        sa.column("description", sa.Text),
    )
    op.bulk_insert(
        table,
        [
            {"protocol": proto, "service": service, "script": script, "description": text}
            for proto, service, script, text in SEED
        ],
    )


def downgrade() -> None:
    op.execute("DELETE FROM service_scripts")
