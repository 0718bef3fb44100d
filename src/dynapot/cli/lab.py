"""`dynapot lab up/list/down` (the throwaway test network) and `dynapot demo` (the whole loop on it)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dynapot.cli.common import Context, command_options

__all__ = ["lab", "register"]

F = TypeVar("F", bound=Callable[..., Any])


def register(main: click.Group) -> None:
    """Add the `lab` group and `demo` to the `dynapot` group."""
    main.add_command(lab)
    main.add_command(demo_command)


def _db_option(func: F) -> F:
    """Every dynapot subcommand takes ``--db``; lab commands accept it and ignore it."""
    return click.option(
        "--db",
        "db",
        metavar="URL",
        help="Accepted for consistency; unused here.",
        show_default="none",
    )(func)


def _run_id(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Checked here, before the lab asks for root: a typo is a usage error, whoever runs it.
    if value is not None and not re.fullmatch(r"[0-9a-f]{6}", value):
        raise click.BadParameter(f"{value!r} is not a run id (6 lowercase hex digits, e.g. 0badc1)")
    return value


@click.group("lab")
def lab() -> None:
    """A throwaway test network of namespaces inside 198.18.0.0/15 (needs root)."""


@lab.command("up")
@click.option("--run-id", callback=_run_id, help="6 hex digits naming the lab.", show_default="random")
@click.option("--json", "as_json", is_flag=True, help="print the lab's description as JSON")
@_db_option
def up(run_id: str | None, as_json: bool, db: str | None) -> None:
    """Build the default lab; it stays up until `dynapot lab down RUN_ID`."""
    from dynapot.lab.network import LabError, lab_up

    try:
        built = lab_up(run_id=run_id)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    built.detach()  # this process exits now; the lab must not go with it
    if as_json:
        click.echo(json.dumps(built.to_dict(), indent=2))
    else:
        click.echo(built.describe())


@lab.command("down")
@click.argument("run_id", required=False, callback=_run_id)
@click.option("--all", "down_all", is_flag=True, help="remove every dynapot lab and stray dp-* namespace")
@_db_option
def down(run_id: str | None, down_all: bool, db: str | None) -> None:
    """Tear down lab RUN_ID, or all labs with --all."""
    from dynapot.lab.network import LabError, lab_down, lab_down_all

    if bool(run_id) == down_all:
        raise click.UsageError("give either RUN_ID or --all")
    try:
        if down_all:
            removed = lab_down_all()
            click.echo(f"removed {len(removed)} lab(s): {' '.join(removed) or '-'}")
            return
        assert run_id is not None
        lab_down(run_id)
    except LabError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"lab {run_id} is down")


@lab.command("list")
@click.option("--json", "as_json", is_flag=True, help="print the labs as JSON")
@_db_option
def list_(as_json: bool, db: str | None) -> None:
    """List labs that have a state file."""
    from dynapot.lab.network import list_labs

    labs = list_labs()
    if as_json:
        click.echo(json.dumps(labs, indent=2))
        return
    if not labs:
        click.echo("no labs")
        return
    for state in labs:
        hosts = " ".join(f"{h['name']}={h['ip']}" for h in state.get("hosts", []))
        present = len(state.get("namespaces_present", []))
        click.echo(
            f"{state['run_id']}  {state.get('status', '?'):<8} {state.get('network', '?'):<16} "
            f"namespaces {present}/{len(state.get('namespaces', []))}  {hosts}"
        )


@click.command("demo")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where the demo writes its database, plan and honeyd.conf.",
)
@command_options
def demo_command(ctx: Context, out_dir: Path) -> None:
    """Build the lab network, scan it with nmap, plan honeypots, write honeyd.conf, tear down.

    The inventory is a new database in --out, unless --db or DYNAPOT_DB names one (made if missing).
    """
    from dynapot.demo import run_demo

    named = ctx.settings.origin("database_url").kind in ("option", "environment")
    run_demo(out_dir, db_url=ctx.settings.database_url if named else None)
