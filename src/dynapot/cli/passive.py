"""Passive discovery commands: `fingerprint` (a capture file) and `watch` (a live interface).

Both run frames through `dynapot.discovery.passive.PassiveObserver` with p0f v3 signatures.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click
from rich.table import Table

from dynapot.cli.common import (
    EXISTING_FILE,
    INTERFACE,
    Context,
    cells,
    command_options,
    print_wide,
    seconds_option,
    shown,
    store_observations,
)
from dynapot.db import Access
from dynapot.discovery.observation import Observation
from dynapot.discovery.p0f import DEFAULT_DATABASE, P0fDatabase, P0fMatcher
from dynapot.discovery.passive import HostSummary, PassiveObserver

__all__ = ["register"]

_P0F_DB_OPTION = click.option(
    "--p0f-db",
    "p0f_db",
    type=EXISTING_FILE,
    default=DEFAULT_DATABASE,
    show_default=True,
    help="p0f v3 fingerprint database.",
)


def register(main: click.Group) -> None:
    """Add `fingerprint` and `watch` to the `dynapot` group."""
    main.add_command(fingerprint_command)
    main.add_command(watch_command)


def _matcher(path: Path) -> P0fMatcher:
    return P0fMatcher(P0fDatabase.load(path))  # a P0fDatabaseError is the user's: status 2


def _report_malformed(observer: PassiveObserver) -> None:
    if observer.malformed:
        bad = ", ".join(f"{reason}: {n}" for reason, n in sorted(observer.malformed.items()))
        click.echo(f"malformed packets: {bad}", err=True)


# --- fingerprint ------------------------------------------------------------------------------


def _host_dict(host: HostSummary) -> dict[str, Any]:
    return {
        "ip": host.ip,
        "mac": host.mac,
        "os": host.os.name if host.os else None,
        "match": host.match,
        "distance": host.distance,
        "services": [
            {
                "proto": p.protocol,
                "port": p.port,
                "service": p.service,
                "product": p.product,
                "version": p.version,
            }
            for _, p in sorted(host.ports.items())
        ],
        "hostname": host.hostname,
    }


def _print_table(hosts: list[HostSummary]) -> None:
    table = Table("address", "MAC", "OS (p0f)", "match", "dist", "services", "hostname")
    for host in hosts:
        services = ", ".join(
            f"{p.port}/{p.protocol} {' '.join(x for x in (p.service, p.product, p.version) if x)}"
            for _, p in sorted(host.ports.items())
        )
        table.add_row(
            *cells(
                host.ip,
                host.mac or "",
                host.os.name if host.os else "?",
                host.match or "",
                "" if host.distance is None else str(host.distance),
                services,
                host.hostname or "",
            )
        )
    print_wide(table)


@click.command("fingerprint")
@click.option("--pcap", "pcap_path", required=True, type=EXISTING_FILE, help="Classic pcap capture to read.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per host and line.")
@click.option("--store", is_flag=True, help="Record what was learned in the database (made if missing).")
@_P0F_DB_OPTION
@command_options
def fingerprint_command(ctx: Context, pcap_path: Path, as_json: bool, store: bool, p0f_db: Path) -> None:
    """Passive discovery on a capture file: hosts, OS (p0f), services, names."""
    from dynapot.discovery.pcap import PcapReader

    observer = PassiveObserver(_matcher(p0f_db))
    with PcapReader(pcap_path) as reader:  # a PcapError is the user's file: status 2
        observer.feed_capture(reader)
        good, error = reader.count, reader.error
    hosts = observer.hosts()
    if as_json:
        for host in hosts:
            click.echo(json.dumps(_host_dict(host), sort_keys=True))
    else:
        _print_table(hosts)
    if store:
        stats = store_observations(ctx, observer.observations(), source=str(pcap_path))
        click.echo(f"stored: {stats.hosts_added} hosts added, {stats.hosts_updated} updated", err=True)
    _report_malformed(observer)
    if error is not None:  # what came before the damage was shown (and stored): a failure, status 1
        raise click.ClickException(f"{pcap_path}: {good} good packets read, then {error}")


# --- watch ------------------------------------------------------------------------------------


class _News:
    """Prints each host, OS, service and name the first time it is learned."""

    def __init__(self) -> None:
        self.shown: set[tuple[str, ...]] = set()

    def _first(self, key: tuple[str, ...]) -> bool:
        if key in self.shown:
            return False
        self.shown.add(key)
        return True

    def show(self, obs: Observation) -> None:
        if self._first((obs.ip,)):
            click.echo(f"host {obs.ip} ({obs.tool}{', ' + obs.mac if obs.mac else ''})")
        if obs.os is not None and self._first((obs.ip, "os", obs.os.name)):
            click.echo(f"os {obs.ip} {shown(obs.os.name)} ({obs.os.accuracy}%)")
        for p in obs.ports:
            if self._first((obs.ip, p.protocol, str(p.port), p.product or "")):
                what = " ".join(x for x in (p.service, p.product, p.version) if x)
                click.echo(f"service {obs.ip} {p.port}/{p.protocol} {shown(what)}")
        if obs.hostname and self._first((obs.ip, "name", obs.hostname)):
            click.echo(f"name {obs.ip} {shown(obs.hostname)}")


@contextlib.contextmanager
def _stop_requested() -> Iterator[list[bool]]:
    """SIGINT and SIGTERM set the flag (its one item) instead of killing; old handlers come back."""
    stop = [False]

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop[0] = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command("watch")
@click.option(
    "--interface", "-i", required=True, type=INTERFACE, help="Interface to listen on (promiscuous)."
)
@seconds_option(until="SIGINT/SIGTERM")
@_P0F_DB_OPTION
@command_options
def watch_command(ctx: Context, interface: str, seconds: float | None, p0f_db: Path) -> None:
    """Passive discovery on a live interface, stored every second (database made if missing)."""
    from dynapot.inventory import record_observations
    from dynapot.sensor.rawsock import InterfaceError, RawSocket

    observer = PassiveObserver(_matcher(p0f_db))
    rule = ctx.settings.discovery.fusion
    database = ctx.database(Access.CREATE)  # opened (and migrated) before the capture starts
    try:
        sock = RawSocket(interface)
    except InterfaceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"listening on {interface}", err=True)  # scripts wait for this line
    news = _News()

    def flush() -> None:
        observations = observer.observations(time.time())
        if not observations:
            return
        # One transaction a second: never a commit per packet.
        record_observations(database, observations, rule)
        for obs in observations:
            news.show(obs)

    deadline = None if seconds is None else time.monotonic() + seconds
    next_flush = time.monotonic() + 1.0
    try:
        with _stop_requested() as stop:
            while not stop[0]:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = min(next_flush, deadline if deadline is not None else next_flush) - now
                try:
                    readable, _, _ = select.select([sock], [], [], max(wait, 0.0))
                except InterruptedError:
                    continue
                if readable:
                    ts = time.time()
                    for frame, checksums_ok, _, _ in sock.frames():
                        observer.feed(frame, ts, checksums_ok)
                if time.monotonic() >= next_flush:
                    flush()
                    next_flush = time.monotonic() + 1.0
            flush()
    finally:
        sock.close()
    _report_malformed(observer)
