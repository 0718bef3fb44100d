"""`dynapot sensor`: load and check the configuration, open the socket, drop root, run until told.

SIGHUP re-reads the configuration and applies the difference to the running sensor (hosts
that did not change keep their connections); a configuration that does not load is logged
and the running one stays. With a status file, the sensor writes its health there as JSON.

The folders it writes to once unprivileged (SSH host keys, uploads, its status) are made for
its user when missing; one that exists is never chowned or chmodded: a status file in a folder
the user may not write is opened while still root and rewritten in place. Every few seconds it
measures its database against the storage budget (`storage.StorageGuard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import pwd
import resource
import signal
import stat
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import ProgrammingError

from dynapot.config import BackendSettings, RedirectSettings, SensorSettings, ServiceSettings, StorageSettings
from dynapot.db import Database
from dynapot.discovery.observation import Observation
from dynapot.discovery.p0f import DEFAULT_DATABASE, P0fDatabase, P0fDatabaseError, P0fMatcher
from dynapot.events import Kind
from dynapot.honeyd.config import BUILTIN_SERVICES
from dynapot.honeyd.parser import HoneydConfigError
from dynapot.inventory import record_observations
from dynapot.personality.catalog import MacVendors
from dynapot.personality.osdb import load_osdb
from dynapot.sensor.actions import ScriptRunner
from dynapot.sensor.config import SensorConfig, parse_sensor_config
from dynapot.sensor.eventlog import Event, EventWriter
from dynapot.sensor.journal import Journal
from dynapot.sensor.privileges import drop_privileges, user_entry
from dynapot.sensor.rawsock import RawSocket, interface_addresses, interface_networks
from dynapot.sensor.runtime import Sensor
from dynapot.sensor.secret import DEFAULT_SECRET, load_or_create_secret
from dynapot.sensor.storage import StorageGuard, database_bytes
from dynapot.services import REGISTRY, UDP_REGISTRY, ftp, smtp, ssh, telnet
from dynapot.services import preload as preload_services
from dynapot.services.contract import Handler
from dynapot.services.ssh import DEFAULT_KEY_DIR
from dynapot.services.uploads import UploadStore

log = logging.getLogger("dynapot.sensor")


STATUS_INTERVAL = 5.0
RESERVED_FILES = 512  # the socket, the database, logs, child pipes, scripts
FILES_PER_SESSION = 3  # the most a service session holds (SSH: a socket pair, and a spare)
DEFAULT_JOURNAL = Path("/var/lib/dynapot/journal")


def _read_at(dir_fd: int, name: str, limit: int = 256 << 20) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit).decode("utf-8")


class ConfigLoader:
    """Reads the honeyd configuration; the nmap databases are read once, while still root.

    The configuration's folder is opened once, as root: re-reading on SIGHUP as an unprivileged
    user then needs no search right on the folders above it (/root/..., a private /tmp/...).
    """

    def __init__(self, path: Path, interface: str, osdb: Path, mac_prefixes: Path) -> None:
        self.path, self.interface = path, interface
        self.fingerprints = load_osdb(osdb)
        self.vendors = MacVendors.load(mac_prefixes)
        try:
            self.dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise HoneydConfigError(str(path), 0, "", f"cannot open its folder: {exc}") from None

    def load(self) -> SensorConfig:
        try:
            text = _read_at(self.dir_fd, self.path.name)
        except (OSError, UnicodeDecodeError) as exc:
            raise HoneydConfigError(str(self.path), 0, "", f"cannot read: {exc}") from None
        config = parse_sensor_config(
            text,
            source=str(self.path),
            fingerprints=self.fingerprints,
            mac_vendors=self.vendors,
            own_addresses=interface_addresses(self.interface),
            builtin_services=BUILTIN_SERVICES | set(REGISTRY) | set(UDP_REGISTRY),
            base_dir=self.path.parent,  # `include`: read as the sensor's user after a reload
        )
        for note in config.notes:
            log.warning("%s: %s", self.path, note)
        return config


class StatusFile:
    """Where the sensor reports its health; its folder is opened while still root (see ConfigLoader).

    In a folder its user may write, each status replaces the file atomically. In one it may not
    (an existing folder is never chowned), the file itself is opened now, as root, and each
    status is written over it in place.
    """

    def __init__(self, path: Path, *, replace: bool = True) -> None:
        self.path = path
        self.dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        self.fd: int | None = None
        if not replace:
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            self.fd = os.open(path.name, flags, 0o644, dir_fd=self.dir_fd)

    def write(self, text: str) -> None:
        if self.fd is not None:
            data = text.encode()
            os.pwrite(self.fd, data, 0)
            os.ftruncate(self.fd, len(data))
            return
        tmp = self.path.name + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=self.dir_fd)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, self.path.name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)


def _load_p0f(path: Path) -> P0fMatcher | None:
    try:
        return P0fMatcher(P0fDatabase.load(path))
    except P0fDatabaseError as exc:
        log.warning("attacker OS guessing is off: %s", exc)
        return None


def run_sensor(
    *,
    interface: str,
    config_path: Path,
    db: Database | None,
    db_url: str | None,
    log_path: Path | None,
    user: str,
    osdb: Path,
    mac_prefixes: Path,
    p0f_path: Path = DEFAULT_DATABASE,
    probe_first: bool = True,
    ready: asyncio.Event | None = None,
    status_path: Path | None = None,
    busy_poll: bool = False,
    fastpath: bool = True,
    secret_path: Path = DEFAULT_SECRET,
    limits: SensorSettings | None = None,
    storage: StorageSettings | None = None,
    journal_path: Path | None = DEFAULT_JOURNAL,
    backends: tuple[BackendSettings, ...] = (),
    redirect: RedirectSettings | None = None,
    service_settings: ServiceSettings | None = None,
) -> dict[str, Any]:
    """Run the sensor until SIGINT/SIGTERM; returns its counters."""
    limits = _within_open_files(limits or SensorSettings())
    storage = storage or StorageSettings()
    user_entry(user)  # a missing user is said before anything is opened
    # Everything that needs root first: the configuration's folder, the secret, the socket,
    # the event writer (it drops root itself), the folders the services write to.
    loader = ConfigLoader(config_path, interface, osdb, mac_prefixes)
    config = loader.load()
    secret = load_or_create_secret(secret_path)
    raw = RawSocket(interface, fast=fastpath)
    events = _open_event_log(db, db_url, log_path, user, len(config.hosts), journal_path)
    status_file = _prepare_files(user, status_path, storage.upload_dir)
    uploads = _upload_store(storage)
    guard = StorageGuard(
        storage, measure=functools.partial(database_bytes, db.engine) if db else None, uploads=uploads
    )
    preload_services()
    drop_privileges(user)
    loop = _new_loop()
    sensor = Sensor(
        config,
        raw,
        events,
        p0f=_load_p0f(p0f_path),
        services=_services(storage, uploads, service_settings or ServiceSettings()),
        udp_services=dict(UDP_REGISTRY),
        scripts=ScriptRunner(),
        on_conflict=_conflict_recorder(db, loop),
        probe_first=probe_first,
        secret=secret,
        limits=limits,
        storage=guard,
        backends=backends,
        redirect=redirect,
    )
    networks, gateway = interface_networks(interface)
    sensor.claims.set_network(networks, gateway)  # routers' traffic is no evidence
    if sensor.redirector is not None:  # a backend talking to the sensor's own address talks to its kernel
        sensor.redirector.set_own_addresses([address for address, _ in networks])
    log.info("answering for %d addresses on %s", len(sensor.hosts), interface)
    try:
        loop.run_until_complete(SensorService(sensor, loader, status_file).serve(ready, busy_poll))
        _stop_services(loop)
    finally:
        loop.close()
        events.close()
        raw.close()
    summary = dict(sensor.counters)
    summary["events written"] = events.written
    summary["events lost"] = events.lost_total
    summary.update(events.counters)
    lag = events.stats()["lag_ms"]
    summary["event lag p99 (ms)"] = lag["p99"]
    summary["frames sent"] = raw.sent
    return summary


def _within_open_files(limits: SensorSettings) -> SensorSettings:
    """Raise the open-file limit to its hard limit, and keep the service sessions within it.

    A session can cost file descriptors (SSH serves each over a socket pair): with the usual
    soft limit of 1,024, 700 SSH connections from one source ran the sensor out of files and
    shut every other source out.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("open files stay limited to %d: %s", soft, exc)
    room = max(16, (soft - RESERVED_FILES) // FILES_PER_SESSION)
    if limits.service_sessions > room:
        log.warning("service sessions limited to %d by the open-file limit (%d)", room, soft)
        limits = limits.model_copy(update={"service_sessions": room})
    return limits


def _open_event_log(
    db: Database | None,
    db_url: str | None,
    log_path: Path | None,
    user: str,
    hosts: int,
    journal_path: Path | None,
) -> EventWriter:
    """The event writer: the journal (with a database), and a child process (its own GIL) that
    opens the database and the log as root, then drops root itself."""
    journal = None
    if db is not None and journal_path is not None:
        _prepare_dir(journal_path, user, mode=0o700)  # the sensor, once unprivileged, writes there
        journal = Journal(journal_path, owner=_owner(user))
    url = db_url if db is not None else None
    events = EventWriter(None, log_path, child=True, db_url=url, user=user, journal=journal)
    events.submit(Event.news(Kind.SENSOR_START, f"{hosts} hosts"))
    events.flush()
    if db is not None:
        with db.engine.connect():
            pass  # our own connection (address conflicts are recorded as real hosts) opened as root
    return events


def _owner(user: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _prepare_files(user: str, status_path: Path | None, upload_dir: Path) -> StatusFile | None:
    """The folders the sensor still writes to once it runs as `user`; its status file."""
    _prepare_dir(DEFAULT_KEY_DIR, user, mode=0o700)  # SSH host keys outlive restarts
    _prepare_dir(upload_dir, user, mode=0o700)  # uploads are kept there
    if status_path is None:
        return None
    writable = _prepare_dir(status_path.parent, user)
    return StatusFile(status_path, replace=writable)


def _upload_store(storage: StorageSettings) -> UploadStore:
    """Where the services keep uploads, with the quotas of the settings; what it holds is counted
    now, while still root."""
    store = UploadStore(
        storage.upload_dir,
        max_file=storage.max_upload,
        per_source=storage.upload_per_source,
        budget=storage.spool_budget or None,
        period=storage.upload_period,
    )
    store.prepare()
    return store


def _services(
    storage: StorageSettings, uploads: UploadStore, settings: ServiceSettings
) -> dict[str, Handler]:
    """The TCP services, those that keep files given the sensor's upload store, those with options
    given the settings' choices."""
    services = dict(REGISTRY)
    services["ftp"] = ftp.make_handler(
        ftp.FtpConfig(
            upload_dir=storage.upload_dir,
            max_upload=storage.max_upload,
            uploads=uploads,
            accept=settings.ftp_logins,
            anonymous=settings.ftp_anonymous,
        )
    )
    services["smtp"] = smtp.make_handler(smtp.SmtpConfig(relay=settings.smtp_relay))
    services["ssh"] = ssh.make_handler(ssh.SSHConfig(uploads=uploads))  # files its shells' sessions write
    services["telnet"] = telnet.make_handler(telnet.TelnetConfig(uploads=uploads))
    return services


def _conflict_recorder(db: Database | None, loop: asyncio.AbstractEventLoop) -> Callable[[str, str], None]:
    """What the sensor does with an address a real machine took back: store that machine as real,
    in a worker thread (a database write must never hold up the packet loop)."""

    allowed = db is not None

    def on_conflict(address: str, mac: str) -> None:
        if db is None or not allowed:
            return
        seen = Observation(address, datetime.now(UTC), "sensor", mac=mac)

        def store() -> None:
            nonlocal allowed
            try:
                record_observations(db, [seen])
            except ProgrammingError as exc:  # a role that may only insert events (PostgreSQL)
                allowed = False
                log.warning(
                    "the sensor's database role may not record real hosts (%s): the conflict events "
                    "are stored, the daemon records the hosts",
                    str(exc.orig or exc).splitlines()[0],
                )
            except Exception:
                log.exception("could not record %s as real", address)

        loop.run_in_executor(None, store)

    return on_conflict


class SensorService:
    """The sensor process around its packet loop: signals, configuration reloads, status."""

    def __init__(self, sensor: Sensor, loader: ConfigLoader, status_file: StatusFile | None) -> None:
        self.sensor, self.loader, self.status_file = sensor, loader, status_file
        self.applied: dict[str, int] | None = None

    async def serve(self, ready: asyncio.Event | None, busy_poll: bool) -> None:
        """Answer until SIGINT or SIGTERM; SIGHUP reloads the configuration."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        tasks = [loop.create_task(self._report_claims())]  # referenced: a bare task may be collected
        tasks.append(loop.create_task(self._watch_storage()))
        if self.status_file is not None:
            tasks.append(loop.create_task(self._report_status()))
        if ready is not None:
            ready.set()
        try:
            await self.sensor.run(stop, busy_poll=busy_poll)
        finally:
            for task in tasks:
                task.cancel()

    def reload(self) -> None:
        """Apply the configuration file as it is now; one that does not load leaves the running one."""
        try:
            new = self.loader.load()
        except (HoneydConfigError, OSError) as exc:
            log.error("configuration not applied, the running one stays: %s", exc)
            return
        self.applied = self.sensor.apply(new)
        log.info("applied %s: %s", self.loader.path, self.applied)
        self.sensor.events.submit(Event.news(Kind.SENSOR_RELOAD, json.dumps(self.applied)))
        self._write_status()

    def _write_status(self) -> None:
        """The sensor's health for `dynapot status`, replaced atomically."""
        if self.status_file is None:
            return
        events = self.sensor.events
        status = {
            "time": time.time(),
            "pid": os.getpid(),
            **self.sensor.health(),
            "events_written": events.written,
            "events_lost": events.lost_total,
            "events": events.stats(),
            "last_apply": self.applied,
        }
        try:
            self.status_file.write(json.dumps(status))
        except OSError as exc:
            log.warning("cannot write status %s: %s", self.status_file.path, exc)

    async def _report_status(self) -> None:
        while True:
            self._write_status()
            await asyncio.sleep(STATUS_INTERVAL)

    async def _watch_storage(self) -> None:
        """Measure the database against its budget every few seconds (in a worker thread: a query);
        say once when a budget is reached."""
        guard = self.sensor.observer.guard
        loop = asyncio.get_running_loop()
        while True:
            used = None
            if guard.measure is not None:
                try:
                    used = await loop.run_in_executor(None, guard.measure)
                except Exception as exc:  # a database that is down: the budget stays as it was
                    log.warning("cannot measure the database: %s", exc)
            self.sensor.observer.storage_news(guard.update(used))
            await asyncio.sleep(STATUS_INTERVAL)

    async def _report_claims(self) -> None:
        """Say how many addresses are ours once the start-up ARP probes are over (lab tests wait
        for this line)."""
        sensor = self.sensor
        routed = sensor.routed_hosts
        total = len(sensor.hosts) - routed
        behind = f"; {routed} more behind routers" if routed else ""
        if sensor.claims.probing_done is not None:
            await sensor.claims.probing_done.wait()
            claimed = len(sensor.hosts) - sensor.routed_hosts
            log.info("claimed %d of %d addresses after ARP probes%s", claimed, total, behind)
        else:
            log.info("claimed %d of %d addresses%s", total, total, behind)


def _stop_services(loop: asyncio.AbstractEventLoop) -> None:
    """Let services notice their connections ended, then stop them (bounded)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    with contextlib.suppress(Exception):
        loop.run_until_complete(asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5))


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: its reader callbacks wake faster, which is latency on every packet."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _prepare_dir(path: Path, user: str, mode: int = 0o755) -> bool:
    """A folder the sensor may still write to once it runs as `user`: made for `user` when missing.

    One that exists is left exactly as it is (never chowned or chmodded: it may be anybody's,
    /tmp or /etc); the answer says whether `user` may write there.
    """
    if os.geteuid() != 0:
        return True  # no root to drop: the sensor writes wherever its user may
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as root, like any folder above a data folder
        os.mkdir(path, mode)
    except FileExistsError:
        info = os.stat(path)
        writable = _writable_by(info, entry)
        if not writable:
            log.warning(
                "%s is not writable by %s, and is left as it is (chown it to %s to let the sensor "
                "keep files there)",
                path,
                user,
                user,
            )
        return writable
    except OSError as exc:
        log.warning("cannot make %s: %s", path, exc)
        return False
    os.chmod(path, mode)  # the folder we just made: our mode whatever the umask
    os.chown(path, entry.pw_uid, entry.pw_gid)
    return True


def _writable_by(info: os.stat_result, entry: pwd.struct_passwd) -> bool:
    """Whether the user may create files in a folder (the sensor keeps only its primary group)."""
    if not stat.S_ISDIR(info.st_mode):
        return False
    if info.st_uid == entry.pw_uid:
        wanted = stat.S_IWUSR | stat.S_IXUSR
    elif info.st_gid == entry.pw_gid:
        wanted = stat.S_IWGRP | stat.S_IXGRP
    else:
        wanted = stat.S_IWOTH | stat.S_IXOTH
    return info.st_mode & wanted == wanted
