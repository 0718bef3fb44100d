"""`dynapot sessions`: sessions recorded on high-interaction honeypots; `sessions replay ID`."""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from datetime import datetime

import click

from dynapot.cli.common import WHEN, Context, UserError, cells, command_options, print_wide, shown
from dynapot.db import Access

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `sessions` (and `sessions replay`) to the `dynapot` group."""
    main.add_command(sessions_group)


def _honeypot(text: str) -> str:
    return str(ipaddress.ip_address(text))


@click.group("sessions", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per session and line.")
@click.option("--since", type=WHEN, help="Start: duration back or ISO time.", show_default="all")
@click.option("--until", type=WHEN, help="End (exclusive): duration back or ISO time.", show_default="now")
@click.option("--honeypot", metavar="IP", help="Only this honeypot's sessions.")
@command_options
def sessions_group(
    ctx: Context, as_json: bool, since: datetime | None, until: datetime | None, honeypot: str | None
) -> None:
    """List the sessions recorded on high-interaction honeypots (Sebek): one per attacker and
    process tree, with its start, end, attacker and the commands typed."""
    from dynapot.analysis.sessions import list_sessions

    if click.get_current_context().invoked_subcommand is not None:
        return
    if honeypot is not None:
        try:
            honeypot = _honeypot(honeypot)
        except ValueError:
            raise UserError(f"--honeypot {shown(honeypot)}: not an IP address") from None
    found = list_sessions(ctx.database(Access.READ), since, until, honeypot)
    if as_json:
        for session in found:
            click.echo(json.dumps(session.as_dict(), sort_keys=True))
        return
    from rich.table import Table

    table = Table("id", "honeypot", "attacker", "start", "end", "records", "lost", "commands")
    for session in found:
        commands = session.commands
        typed = "; ".join(commands[:5]) + (f"; ... ({len(commands)})" if len(commands) > 5 else "")
        table.add_row(
            *cells(
                session.id,
                session.honeypot_ip,
                session.src_ip or "?",
                session.start.isoformat(timespec="seconds"),
                session.end.isoformat(timespec="seconds"),
                len(session.rows),
                session.lost,
                typed,
            )
        )
    print_wide(table)


@sessions_group.command("replay")
@click.argument("session_id", metavar="ID", type=click.IntRange(min=1))
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="2: twice as fast.",
)
@click.option(
    "--max-delay",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Longest pause, in seconds, whatever was recorded.",
)
@click.option("--output/--typed-only", default=False, help="Also show what the terminal wrote (fd 1 and 2).")
@command_options
def replay_command(ctx: Context, session_id: int, speed: float, max_delay: float, output: bool) -> None:
    """Replay a session as it was typed, with its timing. Only newlines and tabs reach the
    terminal as they are; every other control character is shown as \\xNN."""
    from dynapot.analysis.sessions import find_session, replay_steps

    session = find_session(ctx.database(Access.READ), session_id)
    if session is None:
        raise UserError(f"session {session_id}: no such session (see `dynapot sessions`)")
    for step in replay_steps(session.rows, speed=speed, max_delay=max_delay, output=output):
        if step.delay:
            time.sleep(step.delay)
        sys.stdout.write(step.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
