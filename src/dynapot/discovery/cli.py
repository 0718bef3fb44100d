"""`dynapot fingerprint` (a capture file) and `dynapot watch` (a live interface): passive discovery.

Both run frames through `PassiveObserver`. `register(main, command_options)` adds them to
the `dynapot` group; the options common to every command (--db, --config) come from the
caller's `command_options` so that this module needs nothing else from `dynapot.cli`.
"""

from __future__ import annotations

import json
import select
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dynapot.discovery.p0f import DEFAULT_DATABASE, P0fDatabase, P0fDatabaseError, P0fMatcher
from dynapot.discovery.passive import HostSummary, PassiveObserver

__all__ = ["register"]

_P0F_DB_OPTION = click.option(
    "--p0f-db",
    "p0f_db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DATABASE,
    show_default=True,
    help="p0f v3 fingerprint database.",
)


def _matcher(path: Path) -> P0fMatcher:
    try:
        return P0fMatcher(P0fDatabase.load(path))
    except P0fDatabaseError as exc:
        raise click.ClickException(str(exc)) from None


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
    from rich.console import Console
    from rich.table import Table

    table = Table("address", "MAC", "OS (p0f)", "match", "dist", "services", "hostname")
    for host in hosts:
        services = ", ".join(
            f"{p.port}/{p.protocol} {' '.join(x for x in (p.service, p.product, p.version) if x)}"
            for _, p in sorted(host.ports.items())
        )
        table.add_row(
            host.ip,
            host.mac or "",
            host.os.name if host.os else "?",
            host.match or "",
            "" if host.distance is None else str(host.distance),
            services,
            host.hostname or "",
        )
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(table)


def register(main: click.Group, command_options: Any) -> None:
    """Add `fingerprint` and `watch` to the `dynapot` command group."""

    @main.command("fingerprint")
    @click.option(
        "--pcap",
        "pcap_path",
        required=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Classic pcap capture to read.",
    )
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per host and line.")
    @click.option("--store", is_flag=True, help="Record what was learned in the database.")
    @_P0F_DB_OPTION
    @command_options
    def fingerprint_command(ctx: Any, pcap_path: Path, as_json: bool, store: bool, p0f_db: Path) -> None:
        """Passive discovery on a capture file: hosts, OS (p0f), services, names."""
        from dynapot.discovery.pcap import LINKTYPE_ETHERNET, PcapError, PcapReader

        observer = PassiveObserver(_matcher(p0f_db))
        try:
            reader = PcapReader(pcap_path)
        except PcapError as exc:
            raise click.ClickException(str(exc)) from None
        with reader:
            # Captures are often taken on a sending host, before checksum offload fills the
            # checksums in: like p0f, do not verify TCP/UDP checksums here.
            if reader.linktype == LINKTYPE_ETHERNET:
                for pkt in reader:
                    observer.feed(bytes(pkt.data), pkt.ts, checksums_ok=False)
            else:
                for pkt, ip in reader.ip_packets():
                    observer.feed_ip(bytes(ip), pkt.ts, checksums_ok=False)
            good, error = reader.count, reader.error
        hosts = observer.hosts()
        if as_json:
            for host in hosts:
                click.echo(json.dumps(_host_dict(host), sort_keys=True))
        else:
            _print_table(hosts)
        if store:
            from dynapot.inventory import record_observations

            stats = record_observations(ctx.db, observer.observations(), ctx.settings.discovery.fusion)
            click.echo(f"stored: {stats.hosts_added} hosts added, {stats.hosts_updated} updated", err=True)
        if observer.malformed:
            bad = ", ".join(f"{reason}: {n}" for reason, n in sorted(observer.malformed.items()))
            click.echo(f"malformed packets: {bad}", err=True)
        if error is not None:
            raise click.ClickException(f"{pcap_path}: {good} good packets read, then {error}")

    @main.command("watch")
    @click.option("--interface", "-i", required=True, help="Interface to listen on (promiscuous).")
    @click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after this long.")
    @_P0F_DB_OPTION
    @command_options
    def watch_command(ctx: Any, interface: str, seconds: float | None, p0f_db: Path) -> None:
        """Passive discovery on a live interface, stored every second, until SIGINT/SIGTERM."""
        from dynapot.inventory import record_observations
        from dynapot.sensor.rawsock import InterfaceError, RawSocket

        observer = PassiveObserver(_matcher(p0f_db))
        rule = ctx.settings.discovery.fusion
        database = ctx.db  # opened (and migrated) before the capture starts
        try:
            sock = RawSocket(interface)
        except InterfaceError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"listening on {interface}", err=True)  # scripts wait for this line
        stop = False

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal stop
            stop = True

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        shown: set[tuple[str, ...]] = set()
        deadline = None if seconds is None else time.monotonic() + seconds
        next_flush = time.monotonic() + 1.0

        def flush() -> None:
            observations = observer.observations(time.time())
            if not observations:
                return
            # One transaction a second: never a commit per packet.
            record_observations(database, observations, rule)
            for obs in observations:
                if (obs.ip,) not in shown:
                    shown.add((obs.ip,))
                    click.echo(f"host {obs.ip} ({obs.tool}{', ' + obs.mac if obs.mac else ''})")
                if obs.os is not None and (obs.ip, "os", obs.os.name) not in shown:
                    shown.add((obs.ip, "os", obs.os.name))
                    click.echo(f"os {obs.ip} {obs.os.name} ({obs.os.accuracy}%)")
                for p in obs.ports:
                    key = (obs.ip, p.protocol, str(p.port), p.product or "")
                    if key not in shown:
                        shown.add(key)
                        what = " ".join(x for x in (p.service, p.product, p.version) if x)
                        click.echo(f"service {obs.ip} {p.port}/{p.protocol} {what}")
                if obs.hostname and (obs.ip, "name", obs.hostname) not in shown:
                    shown.add((obs.ip, "name", obs.hostname))
                    click.echo(f"name {obs.ip} {obs.hostname}")

        try:
            while not stop:
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
                    for frame, checksums_ok, _ in sock.frames():
                        observer.feed(frame, ts, checksums_ok)
                if time.monotonic() >= next_flush:
                    flush()
                    next_flush = time.monotonic() + 1.0
            flush()
        finally:
            sock.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if observer.malformed:
            bad = ", ".join(f"{reason}: {n}" for reason, n in sorted(observer.malformed.items()))
            click.echo(f"malformed packets: {bad}", err=True)
