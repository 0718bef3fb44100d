"""`dynapot sensor`: load and check the configuration, open the socket, drop root, run until told."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from dynapot.db import Database
from dynapot.discovery.observation import Observation
from dynapot.discovery.p0f import DEFAULT_DATABASE, P0fDatabase, P0fDatabaseError, P0fMatcher
from dynapot.honeyd.config import BUILTIN_SERVICES
from dynapot.inventory import record_observations
from dynapot.personality.catalog import MacVendors
from dynapot.personality.osdb import load_osdb
from dynapot.sensor.config import SensorConfig, load_sensor_config
from dynapot.sensor.events import Event, EventWriter
from dynapot.sensor.handlers import ScriptRunner
from dynapot.sensor.privileges import drop_privileges
from dynapot.sensor.rawsock import RawSocket, interface_addresses
from dynapot.sensor.runtime import Sensor
from dynapot.services import REGISTRY
from dynapot.services import preload as preload_services
from dynapot.services.ssh import DEFAULT_KEY_DIR

log = logging.getLogger("dynapot.sensor")


def load_config(path: Path, interface: str, osdb: Path, mac_prefixes: Path) -> SensorConfig:
    return load_sensor_config(
        path,
        fingerprints=load_osdb(osdb),
        mac_vendors=MacVendors.load(mac_prefixes),
        own_addresses=interface_addresses(interface),
        builtin_services=BUILTIN_SERVICES | set(REGISTRY),
    )


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
) -> dict[str, int]:
    config = load_config(config_path, interface, osdb, mac_prefixes)
    raw = RawSocket(interface)
    # Events are written by a child process (its own GIL); it opens the database and the log,
    # then drops root itself.
    events = EventWriter(None, log_path, child=True, db_url=db_url if db is not None else None, user=user)
    events.submit(Event(time.time(), "tcp", 0, None, 0, None, "sensor-start", f"{len(config.hosts)} hosts"))
    events.flush()
    if db is not None:
        with db.engine.connect():
            pass  # our own connection (address conflicts are recorded as real hosts) opened as root
    _prepare_key_dir(user)
    preload_services()
    drop_privileges(user)
    p0f = _load_p0f(p0f_path)

    def on_conflict(address: str, mac: str) -> None:
        if db is None:
            return
        seen = Observation(address, datetime.now(UTC), "sensor", mac=mac)

        def store() -> None:
            try:
                record_observations(db, [seen])
            except Exception:
                log.exception("could not record %s as real", address)

        loop.run_in_executor(None, store)

    sensor = Sensor(
        config,
        raw,
        events,
        p0f=p0f,
        services=dict(REGISTRY),
        scripts=ScriptRunner(),
        on_conflict=on_conflict,
        probe_first=probe_first,
    )
    log.info("answering for %d addresses on %s", len(sensor.hosts), interface)

    async def main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        if sensor.probing_done is not None:
            total = len(sensor.hosts)

            async def report_claims() -> None:
                await sensor.probing_done.wait()
                log.info("claimed %d of %d addresses after ARP probes", len(sensor.hosts), total)

            loop.create_task(report_claims())
        else:
            log.info("claimed %d of %d addresses", len(sensor.hosts), len(sensor.hosts))
        await sensor.run(stop)

    loop = _new_loop()
    try:
        loop.run_until_complete(main())
        # let services notice their connections ended, then stop them
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5))
    finally:
        loop.close()
        events.close()
        raw.close()
    summary = dict(sensor.counters)
    summary["events written"] = events.written
    summary["events lost"] = events.lost_total
    summary["frames sent"] = raw.sent
    return summary


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: its reader callbacks wake faster, which is latency on every packet."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _prepare_key_dir(user: str) -> None:
    """The SSH host-key folder must stay writable after root is gone: keys outlive restarts."""
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
        DEFAULT_KEY_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chown(DEFAULT_KEY_DIR, entry.pw_uid, entry.pw_gid)
    except (KeyError, OSError) as exc:
        log.warning("SSH host keys will not persist: %s", exc)
