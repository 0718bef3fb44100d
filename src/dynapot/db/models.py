"""The tables of the original design, under clear names.

hosts (IP information), ports, operating_systems, service_scripts,
honeypot_events (the honeyd log) and sessions (the Sebek log), plus
host_os_guesses: every tool's own OS answer with its confidence, so that a
later rule can fuse nmap's and p0f's opinions without losing either.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Explicit constraint names so that Alembic migrations are stable across backends.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back timezone-aware.

    SQLite has no time zones; without this, naive and aware datetimes mix and compare wrongly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class OperatingSystem(Base):
    """One OS group ("Windows XP", "Linux 2.6.X"): the unit the planner balances."""

    __tablename__ = "operating_systems"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    vendor: Mapped[str | None] = mapped_column(String(100))
    family: Mapped[str | None] = mapped_column(String(100))
    generation: Mapped[str | None] = mapped_column(String(100))
    device_type: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)


class Host(Base):
    """IP information: who uses an address, with what OS, seen by which tool and how surely."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    ip: Mapped[str] = mapped_column(String(45), unique=True)
    mac: Mapped[str | None] = mapped_column(String(17))
    mac_vendor: Mapped[str | None] = mapped_column(String(100))
    hostname: Mapped[str | None] = mapped_column(String(255))
    os_id: Mapped[int | None] = mapped_column(ForeignKey("operating_systems.id", ondelete="SET NULL"))
    os_detail: Mapped[str | None] = mapped_column(String(255))  # the tool's own label
    is_virtual: Mapped[bool] = mapped_column(Boolean, default=False)
    personality: Mapped[str | None] = mapped_column(String(255))  # nmap-os-db name, virtual hosts
    tool: Mapped[str] = mapped_column(String(32))
    reliability: Mapped[int | None] = mapped_column(Integer)  # the tool's confidence, 0..100
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    os: Mapped[OperatingSystem | None] = relationship(lazy="joined")
    ports: Mapped[list[Port]] = relationship(
        back_populates="host", cascade="all, delete-orphan", passive_deletes=True
    )


class HostOsGuess(Base):
    """One tool's latest OS answer for one host, kept beside the fused one in hosts."""

    __tablename__ = "host_os_guesses"
    __table_args__ = (UniqueConstraint("host_id", "tool", name="uq_host_os_guesses_host_tool"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    tool: Mapped[str] = mapped_column(String(32))
    os_id: Mapped[int | None] = mapped_column(ForeignKey("operating_systems.id", ondelete="SET NULL"))
    detail: Mapped[str] = mapped_column(String(255))
    confidence: Mapped[int] = mapped_column(Integer)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The CPE names of the tool's OS class (nmap's osclass: cpe:/o:microsoft:windows_nt:4.0), which
    # tell one release from another where the class's generation does not ("NT").
    cpe: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))


class Port(Base):
    """A port of a host: state and service as the last tool saw them."""

    __tablename__ = "ports"
    __table_args__ = (UniqueConstraint("host_id", "protocol", "port", name="uq_ports_host_proto_port"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    protocol: Mapped[str] = mapped_column(String(8))
    port: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    service: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(255))
    extra_info: Mapped[str | None] = mapped_column(String(255))
    tool: Mapped[str] = mapped_column(String(32))
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    host: Mapped[Host] = relationship(back_populates="ports")


class ServiceScript(Base):
    """Which honeyd script or built-in emulator imitates a service (the design's Services Scripts)."""

    __tablename__ = "service_scripts"
    __table_args__ = (UniqueConstraint("protocol", "service", name="uq_service_scripts_proto_service"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    protocol: Mapped[str] = mapped_column(String(8))
    service: Mapped[str] = mapped_column(String(64))  # nmap's service name
    script: Mapped[str] = mapped_column(String(255))  # built-in emulator name or a command
    description: Mapped[str | None] = mapped_column(Text)


class HoneypotEvent(Base):
    """The honeyd log: one touch of a virtual honeypot."""

    __tablename__ = "honeypot_events"
    __table_args__ = (
        Index("ix_honeypot_events_src_time", "src_ip", "time"),
        Index("ix_honeypot_events_dst_time", "dst_ip", "time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    protocol: Mapped[str] = mapped_column(String(8))
    src_ip: Mapped[str] = mapped_column(String(45))
    src_port: Mapped[int | None] = mapped_column(Integer)
    dst_ip: Mapped[str] = mapped_column(String(45))
    dst_port: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))  # what happened: connect, probe, login, ...
    detail: Mapped[str | None] = mapped_column(Text)
    attacker_os: Mapped[str | None] = mapped_column(String(255))
    scan_tool: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # no data is SQL NULL, not 'null'


class EventRollup(Base):
    """The honeyd log summed per hour, source, target, protocol, port and kind (the report's base).

    `events` counts what happened (a folded noise row counts as the packets it stands for),
    `rows` the log rows; `hour` is the hour's start in epoch seconds; `dst_port` is -1 for events
    with no port (a unique key cannot hold NULL). Filled past `EventRollupMark.last_event_id`
    by `analysis.report.rollup.refresh_rollup`; sensor notices (no flow) are left out.
    """

    __tablename__ = "event_rollup"
    __table_args__ = (UniqueConstraint("hour", "src_ip", "dst_ip", "protocol", "dst_port", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger)
    src_ip: Mapped[str] = mapped_column(String(45))
    dst_ip: Mapped[str] = mapped_column(String(45))
    protocol: Mapped[str] = mapped_column(String(8))
    dst_port: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    events: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    attacker_os: Mapped[str | None] = mapped_column(String(255))  # the greatest of the hour's
    scan_tool: Mapped[str | None] = mapped_column(String(64))


class EventRollupMark(Base):
    """How far `event_rollup` holds the log (one row, id 1): every event with an id up to
    `last_event_id` is summed in it, none above; `expired_before` is the newest expiry cutoff of
    events, whose hour is read from the events themselves (the roll-up still counts those expired)."""

    __tablename__ = "event_rollup_mark"

    id: Mapped[int] = mapped_column(primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger)
    expired_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QuarantinedEvent(Base):
    """An event the database refused even after it was made safe: kept, never retried.

    The event writer splits a batch that fails until the offending row is alone; that row
    comes here instead of `honeypot_events`, as escaped text (`raw`: the event's fields as
    ASCII JSON), with the database's error and when it happened.
    """

    __tablename__ = "quarantined_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # when it was quarantined
    event_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    kind: Mapped[str | None] = mapped_column(String(32))
    src_ip: Mapped[str | None] = mapped_column(String(45))
    error: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)


class EventJournal(Base):
    """How far a sensor's local event journal is stored: written in the transaction of each batch.

    After a crash the sensor replays what its journal holds beyond this position, so that an
    event is stored once, whether the crash came before or after its batch was committed.
    """

    __tablename__ = "event_journal"

    journal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    segment: Mapped[int] = mapped_column(BigInteger)
    journal_offset: Mapped[int] = mapped_column(BigInteger)
    events: Mapped[int] = mapped_column(BigInteger)  # stored through this journal, all told
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Session(Base):
    """The Sebek log: one row per Sebek v3 record from a physical (high-interaction) honeypot.

    `time` is the honeypot's clock (the record's); `honeypot_ip` the record's sender; `src_ip`
    the attacker, when the collector could link the process to a connection (else NULL).
    `type` is Sebek's (0 read: what was typed, 1 write, 2 socket, 3 open); `command` the
    process name and `data` what it read or wrote, both as `textsafe.for_storage` text.
    `lost_before`: records the sender's counter says were lost just before this one (-1: this
    record came late and fills one counted before), so that their sum is the net loss.
    """

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    honeypot_ip: Mapped[str] = mapped_column(String(45), index=True)
    src_ip: Mapped[str | None] = mapped_column(String(45), index=True)
    pid: Mapped[int | None] = mapped_column(BigInteger)  # Sebek's fields are unsigned 32-bit
    uid: Mapped[int | None] = mapped_column(BigInteger)
    fd: Mapped[int | None] = mapped_column(BigInteger)
    command: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[str | None] = mapped_column(Text)
    ppid: Mapped[int | None] = mapped_column(BigInteger)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[int | None] = mapped_column(Integer)
    counter: Mapped[int | None] = mapped_column(BigInteger)
    lost_before: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Finding(Base):
    """A correlated attack (scan, brute force, worm): its risk and the events behind it.

    `key` is the correlator's stable identity of the attack; rows are upserted by it.
    """

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    risk: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    summary: Mapped[str] = mapped_column(Text)
    sources: Mapped[list] = mapped_column(JSON)
    targets: Mapped[list] = mapped_column(JSON)
    ports: Mapped[list] = mapped_column(JSON)
    event_count: Mapped[int] = mapped_column(Integer)
    event_ids: Mapped[list] = mapped_column(JSON)  # a capped sample, oldest first
    details: Mapped[dict | None] = mapped_column(JSON)  # counts and flags: os_scan, accepted, users...


class Alert(Base):
    """One notification about a finding, sent or not (rate limits, digests, failures)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[int | None] = mapped_column(ForeignKey("findings.id", ondelete="SET NULL"), index=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    channel: Mapped[str] = mapped_column(String(255))  # e.g. "mailto://...", secrets redacted
    status: Mapped[str] = mapped_column(String(16), index=True)  # sent, failed, pending, suppressed, digest
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)

    finding: Mapped[Finding | None] = relationship()


EXPIRABLE = {
    "hosts": (Host, Host.last_seen),
    "ports": (Port, Port.seen_at),
    "honeypot_events": (HoneypotEvent, HoneypotEvent.time),
    "sessions": (Session, Session.time),
    "findings": (Finding, Finding.last_seen),
    "alerts": (Alert, Alert.time),
}


# --- the admin web interface: accounts, API tokens, logins, the audit log ----------------------


class User(Base):
    """An account of the admin web interface: admin (may change settings) or viewer (reads only).

    Only an argon2 hash of the password is kept. `failed_logins` counts failures in a row;
    past the settings' limit the account is locked until `locked_until`. `disabled_at`: an
    admin turned it off (its own state: unlocking does not turn it on again).
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | viewer
    password_hash: Mapped[str] = mapped_column(String(255))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_login: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set by an admin: no login, no session, no token until enabled again (apart from a lockout).
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A named bearer token of one user, for scripts: only its SHA-256 is kept; revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    user: Mapped[User] = relationship(lazy="joined")


class WebSession(Base):
    """A browser login: the SHA-256 of its cookie, its user, its CSRF token, when it ends."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    user: Mapped[User] = relationship(lazy="joined")


class AuditEntry(Base):
    """Who changed what, when, from which value to which (secrets masked before they get here)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # the user's name (kept when the user is deleted)
    action: Mapped[str] = mapped_column(String(64))  # setting.change, user.create, token.revoke, ...
    target: Mapped[str] = mapped_column(String(255))  # the setting or account it touched
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)


class PlanReview(Base):
    """A plan the daemon computed in hold mode (`planner.apply = "hold"`), and what became of it.

    The daemon writes a row per distinct plan (`digest`) it holds; an admin's apply marks it
    approved (who, when); the daemon deploys it when its own plan still has that digest, else it
    is superseded ("the plan changed, review again"). Deployments it made are rows too (applied),
    so that the next plan can say which real hosts joined or left since.
    """

    __tablename__ = "plan_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    network: Mapped[str] = mapped_column(String(64), index=True)  # the CIDR the plan is for
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the hosts it deploys and its diff
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending approved applied superseded
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    summary: Mapped[dict] = mapped_column(JSON)  # the diff and the real hosts it was planned for
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)  # why it was superseded


class SettingsRequest(Base):
    """A settings change the web child asks the daemon to write (`dynapot run` with `[web]`).

    The web child runs as its own account and may not write the settings file the root daemon
    reads (whoever writes it chooses the sensor's account, the state folder, ...). It stores the
    admin's change here; the daemon validates it against the page's editable settings, writes the
    file as root and answers in `result` (the changes made, or each field's reason). What was
    submitted (alert URLs may hold passwords) is cleared once answered.
    """

    __tablename__ = "settings_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending working applied refused abandoned
    submitted: Mapped[dict] = mapped_column(JSON)  # dotted setting -> value, as the page sent it
    result: Mapped[dict | None] = mapped_column(JSON)  # {"changes": [...]} or {"errors": {...}}
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
