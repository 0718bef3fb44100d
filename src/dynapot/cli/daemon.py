"""`dynapot run` (the daemon) and `dynapot status` (what it and the sensor are doing)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from typing import Any

import click

from dynapot.cli.common import Context, command_options

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `run` and `status` to the `dynapot` group."""
    main.add_command(run_command)
    main.add_command(status_command)


@click.command("run")
@click.option("--interface", "-i", help="Overrides daemon.interface.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after this long.")
@command_options
def run_command(ctx: Context, interface: str | None, seconds: float | None) -> None:
    """Run the dynamic honeypot: discover, plan, deploy, correlate, alert; until SIGTERM.

    The planner, alert and correlation policy is re-read when the settings file changes, or
    on SIGHUP; the new plan is applied at once.
    """
    from dynapot.daemon.engine import Daemon
    from dynapot.sensor.rawsock import InterfaceError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = ctx.settings
    if interface:
        settings = settings.model_copy(
            update={"daemon": settings.daemon.model_copy(update={"interface": interface})}
        )
    try:
        daemon = Daemon(settings, ctx.db, settings_path=ctx.settings_path)
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

    status = gather_status(ctx.settings, ctx.db)
    if as_json:
        click.echo(json.dumps(status, indent=2, sort_keys=True))
        return
    click.echo(
        f"{len(status['real_hosts'])} real hosts, {len(status['virtual_hosts'])} virtual hosts, "
        f"{status['free_addresses']} addresses neither; {status['events']} events, "
        f"{status['findings']} findings"
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
        click.echo(f"  error: {error}")


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
