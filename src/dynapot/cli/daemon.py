"""`dynapot run` (the daemon) and `dynapot status` (what it and the sensor are doing)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from typing import Any

import click

from dynapot.cli.common import (
    Context,
    command_options,
    require_interface,
    seconds_option,
    setting_option,
    shown,
)
from dynapot.db import Access

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `run` and `status` to the `dynapot` group."""
    main.add_command(run_command)
    main.add_command(status_command)


@click.command("run")
@setting_option("--interface", "-i", setting="daemon.interface", help="The interface to watch and serve.")
@seconds_option(until="SIGTERM")
@command_options
def run_command(ctx: Context, seconds: float | None) -> None:
    """Run the dynamic honeypot: discover, plan, deploy, correlate, alert; until SIGTERM.

    Creates the database when it is not there. The planner, alert and correlation policy is
    re-read when the settings file changes, or on SIGHUP; the new plan is applied at once.
    """
    from dynapot.daemon.engine import Daemon, check_settings
    from dynapot.sensor.rawsock import InterfaceError

    settings = ctx.settings
    check_settings(settings)  # before the database is opened (or made)
    require_interface(settings, "daemon.interface")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        daemon = Daemon(settings, ctx.database(Access.CREATE), settings_path=ctx.settings_path)
    except InterfaceError as exc:
        raise click.ClickException(str(exc)) from None

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: daemon.reload_policy(force=True))
        if seconds is not None:
            loop.call_later(seconds, stop.set)
        await daemon.run(stop)

    try:
        asyncio.run(main_loop())
    except InterfaceError as exc:  # the raw socket is opened when the daemon starts running
        raise click.ClickException(str(exc)) from None


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
@command_options
def status_command(ctx: Context, as_json: bool) -> None:
    """Real hosts, virtual hosts, free addresses, last scan, daemon and sensor health."""
    from dynapot.daemon.status import gather_status

    status = gather_status(ctx.settings, ctx.database(Access.READ))
    if as_json:
        click.echo(json.dumps(status, indent=2, sort_keys=True))
        return
    free = status["free_addresses"]
    # Free addresses are counted in the configured network; without one there is nothing to count.
    neither = "no network configured" if free is None else f"{free} addresses neither"
    click.echo(
        f"{len(status['real_hosts'])} real hosts, {len(status['virtual_hosts'])} virtual hosts, "
        f"{neither}; {status['events']} events, {status['findings']} findings"
    )
    _echo_daemon(status["daemon"])
    _echo_sensor(status["sensor"])


def _echo_daemon(daemon: dict[str, Any] | None) -> None:
    if daemon is None:
        click.echo("daemon: no status (not running here?)")
        return
    last_scan = daemon.get("last_scan")
    scan = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last_scan)) if last_scan else "never"
    click.echo(
        f"daemon: {daemon['mode']} on {daemon['network']}, status {daemon['age']} s old; "
        f"last scan {scan}; {daemon['replans']} re-plans; alerts {daemon.get('alerts')}"
    )
    for error in daemon.get("errors", []):
        click.echo(f"  error: {shown(error)}")
    stopped = daemon.get("scan_stopped")
    if isinstance(stopped, dict):
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stopped.get("time") or 0))
        click.echo(
            f"  scan stopped {at} ({shown(stopped.get('reason'))}): {stopped.get('nmaps_ended')} nmap(s) "
            f"ended in {stopped.get('seconds')} s; {stopped.get('hosts_kept')} host(s) scanned to the end "
            f"kept, {stopped.get('hosts_dropped')} dropped"
        )
    web = daemon.get("web")
    if isinstance(web, dict):
        state = "running" if web.get("running") else "not running"
        click.echo(f"  web interface: {state} on {shown(web.get('listen'))}, {web.get('starts')} start(s)")
        if web.get("last_error"):
            click.echo(f"  web error: {shown(web['last_error'])}")
    if daemon.get("held"):
        click.echo(
            f"  a new plan is held for review ({shown(str(daemon['held'])[:12])}): "
            "apply it on the web interface's plan page or with `dynapot admin held-plan`"
        )
    collector = daemon.get("collector")
    if isinstance(collector, dict):
        malformed = sum((collector.get("malformed") or {}).values())
        click.echo(
            f"  collector: {collector['stored']} Sebek records stored of {collector['records']}, "
            f"{collector['lost']} lost (counter gaps), {malformed} malformed, "
            f"{collector['dropped_queue']} dropped (queue), {collector['dropped_kernel']} (kernel)"
        )


def _echo_sensor(sensor: dict[str, Any] | None) -> None:
    if sensor is None:
        click.echo("sensor: no status")
        return
    click.echo(
        f"sensor: pid {sensor['pid']}, {sensor['hosts']} hosts answered, "
        f"{sensor['pending']} pending, {len(sensor['released'])} given back, "
        f"{sensor['events_lost']} events lost, "
        f"status {sensor['age']} s old"
    )
    storage = sensor.get("storage")
    if isinstance(storage, dict):
        click.echo(f"  storage: {_storage_line(storage)}")
    events = sensor.get("events")
    if events:
        lag = events.get("lag_ms") or {}
        journal = events.get("journal")
        kept = f", journal {journal['bytes'] / 1048576:.1f} MiB unstored" if journal else ", no journal"
        click.echo(
            f"  events: {events['stored']} stored, {events['replayed']} replayed, {events['queued']} queued; "
            f"lag p50 {lag.get('p50')} ms, p99 {lag.get('p99')} ms{kept}"
        )
    drops = sensor.get("drops") or {}
    if not drops:
        click.echo("  drops: none")
        return
    click.echo("  drops:")
    width = max(len(str(count)) for count in drops.values())
    for name, count in drops.items():
        click.echo(f"    {count:>{width}}  {shown(name)}")


def _storage_line(storage: dict[str, Any]) -> str:
    """The sensor's budgets and what it did not store, on one line."""
    database = storage.get("database") or {}
    uploads = storage.get("uploads") or {}
    parts = [
        f"database {_amount(database.get('used'))} of {_amount(database.get('budget'))} "
        f"({database.get('level', '?')})",
        f"uploads {_amount(uploads.get('used'))} of {_amount(uploads.get('budget'))}",
    ]
    counted = {k: v for k, v in storage.items() if isinstance(v, int) and not isinstance(v, bool) and v}
    parts += [f"{name} {value}" for name, value in sorted(counted.items())]
    refused = {k: v for k, v in uploads.items() if k.startswith("not kept") and v}
    parts += [f"uploads {name} {value}" for name, value in sorted(refused.items())]
    return "; ".join(parts)


def _amount(value: Any) -> str:
    if not isinstance(value, int) or isinstance(value, bool):
        return "-" if value is None else str(value)
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"
