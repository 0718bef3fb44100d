"""The sensor's own PostgreSQL role: it may add events, and nothing else.

The sensor faces the attackers; if one ever ran code in it, its database role is all it would
hold. `sensor_grants` gives an existing login role exactly what the sensor's event writer needs
(connect, find the table, insert rows, draw their ids; keep the rows it cannot store in
`quarantined_events`; read and move its own place in its journal, `event_journal`) and nothing
more: it cannot read events back, change or delete them, or touch any other table. The
statements are the README's; the tests run them on a real server. Run them as the database's
owner, after `dynapot db upgrade`.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _quoted(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain SQL name (letters, digits, _)")
    return f'"{name}"'


def sensor_grants(role: str, database: str, schema: str = "public") -> list[str]:
    """The statements that let `role` insert events into `database` and do nothing else."""
    r, d, s = _quoted(role), _quoted(database), _quoted(schema)
    return [
        f"GRANT CONNECT ON DATABASE {d} TO {r}",
        f"GRANT USAGE ON SCHEMA {s} TO {r}",
        f"GRANT INSERT ON {s}.honeypot_events TO {r}",
        f"GRANT USAGE ON SEQUENCE {s}.honeypot_events_id_seq TO {r}",
        f"GRANT INSERT ON {s}.quarantined_events TO {r}",
        f"GRANT USAGE ON SEQUENCE {s}.quarantined_events_id_seq TO {r}",
        f"GRANT SELECT, INSERT, UPDATE ON {s}.event_journal TO {r}",
        # Before PostgreSQL 15 every role may create tables in public: not this one.
        f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC",
    ]
