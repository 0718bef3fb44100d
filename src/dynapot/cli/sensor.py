"""`dynapot sensor`: answer for the virtual hosts of a honeyd configuration on one interface."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dynapot.cli.common import EXISTING_FILE, INTERFACE, Context, UserError, command_options
from dynapot.db import Access
from dynapot.sensor.secret import DEFAULT_SECRET

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])


def register(main: click.Group) -> None:
    """Add `sensor` to the `dynapot` group."""
    main.add_command(sensor_command)


def _optional_file(flag: str, dest: str, text: str) -> Callable[[F], F]:
    """A file the sensor writes only when asked."""
    path = click.Path(dir_okay=False, path_type=Path)
    return click.option(flag, dest, type=path, help=text, show_default="none")


@click.command("sensor")
@click.option(
    "--interface", "-i", required=True, type=INTERFACE, help="The interface the virtual hosts live on."
)
@click.option(
    "--config",
    "honeyd_config",
    required=True,
    type=EXISTING_FILE,
    help="honeyd configuration (as written by `dynapot honeyd-config`).",
)
@_optional_file("--log", "log_path", "honeyd-format log file.")
@click.option(
    "--user",
    default="dynapot",
    show_default=True,
    help="Drop root to this user once the socket is open (a system account of its own, which the "
    "set-up makes).",
)
@click.option("--no-db", is_flag=True, help="Log to --log only, not to the database (which must exist).")
@click.option(
    "--no-probe", is_flag=True, help="Answer at once, without first ARP-probing each address (RFC 5227)."
)
@_optional_file("--status", "status_path", "Write the sensor's health here as JSON every few seconds.")
@click.option(
    "--busy-poll",
    is_flag=True,
    help="Read the socket on every loop turn: about half the reply latency, one CPU core busy.",
)
@click.option(
    "--secret",
    "secret_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_SECRET,
    show_default=True,
    help="The deployment's secret (made at first start, 0600): host names, boot times and ISNs are "
    "keyed with it.",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/var/lib/dynapot/journal"),
    show_default=True,
    help="The event journal's folder: every event is written there before the database, and what "
    "a crash left unstored is replayed at the next start (not used with --no-db).",
)
@click.option(
    "--no-fastpath",
    is_flag=True,
    help="Read the socket from Python, without the C receive thread that answers ARP, pings and "
    "SYNs (slower; for comparison).",
)
@command_options(settings_option="--settings")
def sensor_command(
    ctx: Context,
    interface: str,
    honeyd_config: Path,
    log_path: Path | None,
    user: str,
    no_db: bool,
    no_probe: bool,
    status_path: Path | None,
    busy_poll: bool,
    no_fastpath: bool,
    secret_path: Path,
    journal_path: Path,
) -> None:
    """Answer for the configured virtual hosts on INTERFACE until SIGINT/SIGTERM.

    SIGHUP re-reads the configuration and applies only what changed.
    """
    import logging

    from dynapot.sensor.journal import JournalError
    from dynapot.sensor.main import run_sensor
    from dynapot.sensor.privileges import PrivilegeError
    from dynapot.sensor.rawsock import InterfaceError
    from dynapot.sensor.secret import SecretError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        summary = run_sensor(
            interface=interface,
            config_path=honeyd_config,
            db=None if no_db else ctx.database(Access.APPEND),  # it only adds events
            db_url=None if no_db else ctx.settings.database_url,
            log_path=log_path,
            user=user,
            osdb=ctx.settings.nmap_os_db,
            mac_prefixes=ctx.settings.nmap_mac_prefixes,
            probe_first=not no_probe,
            status_path=status_path,
            busy_poll=busy_poll,
            fastpath=not no_fastpath,
            secret_path=secret_path,
            limits=ctx.settings.sensor,
            storage=ctx.settings.storage,
            journal_path=journal_path,
            backends=ctx.settings.backends,
            redirect=ctx.settings.redirect,
            service_settings=ctx.settings.services,
        )
    except PrivilegeError as exc:
        raise UserError(f"--user {user}: {exc}") from None
    except (InterfaceError, SecretError, JournalError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary, sort_keys=True), err=True)
