"""`dynapot run` (the daemon) and `dynapot status` (what it and the sensor are doing)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select

__all__ = ["gather_status", "register"]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def gather_status(ctx: Any) -> dict[str, Any]:
    """Real and virtual hosts, free addresses, last scan and the health of daemon and sensor."""
    from dynapot.db.models import Finding, HoneypotEvent, Host
    from dynapot.inventory import network_picture

    settings = ctx.settings
    state_dir = settings.daemon.state_dir
    daemon = _read_json(state_dir / "daemon-status.json")
    sensor = _read_json(state_dir / "sensor" / "status.json")
    now = time.time()
    with ctx.db.session() as session:
        hosts = session.scalars(select(Host).order_by(Host.ip)).all()
        real = [
            {
                "ip": h.ip,
                "mac": h.mac,
                "os": h.os.name if h.os else None,
                "tool": h.tool,
                "last_seen": h.last_seen.isoformat(),
            }
            for h in hosts
            if not h.is_virtual
        ]
        virtual = [{"ip": h.ip, "mac": h.mac, "personality": h.personality} for h in hosts if h.is_virtual]
        events = session.scalar(select(func.count()).select_from(HoneypotEvent)) or 0
        findings = session.scalar(select(func.count()).select_from(Finding)) or 0
    free = None
    if settings.networks:
        # The planner's own free addresses (hold-off, gateway, exclusions), less those we fill.
        picture = network_picture(ctx.db, settings.networks[0], settings.planner)
        free = len(set(picture.free_ips) - {h["ip"] for h in virtual})
    return {
        "real_hosts": real,
        "virtual_hosts": virtual,
        "free_addresses": free,
        "events": events,
        "findings": findings,
        "daemon": daemon and {**daemon, "age": round(now - daemon.get("time", 0), 1)},
        "sensor": sensor and {**sensor, "age": round(now - sensor.get("time", 0), 1)},
    }


def register(main: click.Group, command_options: Any) -> None:
    @main.command("run")
    @click.option("--interface", "-i", help="Overrides daemon.interface.")
    @click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Stop after this long.")
    @command_options
    def run_command(ctx: Any, interface: str | None, seconds: float | None) -> None:
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

    @main.command("status")
    @click.option("--json", "as_json", is_flag=True, help="Print everything as one JSON object.")
    @command_options
    def status_command(ctx: Any, as_json: bool) -> None:
        """Real hosts, virtual hosts, free addresses, last scan, daemon and sensor health."""
        status = gather_status(ctx)
        if as_json:
            click.echo(json.dumps(status, indent=2, sort_keys=True))
            return
        daemon, sensor = status["daemon"], status["sensor"]
        click.echo(
            f"{len(status['real_hosts'])} real hosts, {len(status['virtual_hosts'])} virtual hosts, "
            f"{status['free_addresses']} addresses neither; {status['events']} events, "
            f"{status['findings']} findings"
        )
        if daemon is None:
            click.echo("daemon: no status (not running here?)")
        else:
            last_scan = daemon.get("last_scan")
            scan = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last_scan)) if last_scan else "never"
            click.echo(
                f"daemon: {daemon['mode']} on {daemon['network']}, status {daemon['age']} s old; "
                f"last scan {scan}; {daemon['replans']} re-plans; alerts {daemon.get('alerts')}"
            )
            for error in daemon.get("errors", []):
                click.echo(f"  error: {error}")
        if sensor is None:
            click.echo("sensor: no status")
        else:
            click.echo(
                f"sensor: pid {sensor['pid']}, {sensor['hosts']} hosts answered, "
                f"{sensor['pending']} pending, {len(sensor['released'])} given back, "
                f"{sensor['events_lost']} events lost, "
                f"status {sensor['age']} s old"
            )
