"""The inventory's commands: `db upgrade`, `expire`, `scan`, `import-nmap`, `import-p0f`, `hosts`.

`db upgrade` and the commands that store a scan (`scan`, `import-nmap`, `import-p0f`) create
the database when it is not there; `expire` needs an existing one; `hosts` only reads.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dynapot.cli.common import (
    EXISTING_FILE,
    Context,
    UserError,
    cells,
    command_options,
    err_console,
    print_wide,
    setting_option,
    store_observations,
)
from dynapot.db import Access
from dynapot.discovery.p0f import DEFAULT_DATABASE

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add the database, scanning, import and listing commands to the `dynapot` group."""
    main.add_command(db)
    for command in (expire_command, scan_command, import_nmap, import_p0f, hosts_command):
        main.add_command(command)


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@command_options
def db_upgrade(ctx: Context) -> None:
    """Create the database and its tables, or migrate them to the current schema."""
    click.echo(f"database {ctx.database(Access.CREATE).url} is at the current schema")


@click.command("expire")
@command_options
def expire_command(ctx: Context) -> None:
    """Delete entries older than their table's configured age."""
    from dynapot.inventory import expire

    counts = expire(ctx.database(Access.WRITE), ctx.settings.expiry)
    for table, count in counts.items():
        click.echo(f"{table}: {count} expired")


def _check_targets(_ctx: click.Context, _param: click.Parameter, targets: tuple[str, ...]) -> tuple[str, ...]:
    from dynapot.discovery.active import parse_targets

    try:
        parse_targets(list(targets))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return targets


def _check_ports(_ctx: click.Context, _param: click.Parameter, ports: str | None) -> str | None:
    from dynapot.discovery.active import ScanOptions

    try:
        return ports if ports is None else ScanOptions(ports=ports).ports
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


ACTIVE = "discovery.active."  # the settings scan's options override


@click.command("scan")
@click.argument("targets", nargs=-1, required=True, callback=_check_targets)
@setting_option("-N", "--parallel", setting=ACTIVE + "parallel", type=int, help="Scans run at once (N).")
@setting_option(
    "-D", "--interval", setting=ACTIVE + "interval", type=float, help="Seconds between batches (D)."
)
@setting_option("--polite/--normal", setting=ACTIVE + "polite", default=None, help="nmap's polite timing.")
@setting_option(
    "--host-timeout", setting=ACTIVE + "host_timeout", type=float, help="Seconds per host at most."
)
@setting_option(
    "--ports",
    setting=ACTIVE + "ports",
    callback=_check_ports,
    help="Ports to scan, in nmap -p syntax.",
    show_default=f"setting {ACTIVE}ports, else nmap's top 100",
)
@setting_option(
    "--os/--no-os", "os_detection", setting=ACTIVE + "os_detection", default=None, help="nmap -O."
)
@setting_option(
    "--versions/--no-versions", "version_detection", setting=ACTIVE + "version_detection", default=None,
    help="Service versions (nmap -sV).",
)  # fmt: skip
@setting_option("--nmap", "nmap_path", setting=ACTIVE + "nmap_path", help="Path of the nmap binary.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored hosts as JSON.")
@command_options
def scan_command(ctx: Context, targets: tuple[str, ...], as_json: bool) -> None:
    """Probe TARGETS (addresses or CIDR networks) with nmap and store what it finds."""
    from dynapot.discovery.active import run_scan, scan_options
    from dynapot.inventory import host_listing

    active = ctx.settings.discovery.active
    try:
        options = scan_options(active)
    except ValueError as exc:  # what the settings model leaves to the scanner: the -p syntax
        raise UserError(f"{ctx.settings.describe('discovery.active.ports')}: {exc}") from None
    if shutil.which(active.nmap_path) is None:
        raise UserError(f"{ctx.settings.describe('discovery.active.nmap_path')}: no such program")
    result = _scan_with_progress(run_scan, list(targets), options)
    stats = store_observations(ctx, result.observations, source="scan")
    for ip in result.timed_out:
        err_console.print(f"[yellow]timed out:[/] {ip}")
    for ip, error in result.errors.items():
        err_console.print(f"[red]failed:[/] {ip}: {error}")
    if as_json:
        click.echo(json.dumps(host_listing(ctx.database(Access.CREATE)), indent=2))
    else:
        click.echo(
            f"stored {stats.hosts_added} new and {stats.hosts_updated} known hosts, {stats.ports} ports"
            f" ({len(result.timed_out)} timed out, {len(result.errors)} failed)"
        )


def _scan_with_progress(run_scan: Callable[..., Any], targets: list[str], options: Any) -> Any:
    """Run the scan with one progress bar per phase on standard error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as progress:
        tasks: dict[str, Any] = {}

        def report(update: Any) -> None:
            task = tasks.get(update.phase)
            label = {"sweep": "host discovery", "detail": "OS and service scans"}.get(
                update.phase, update.phase
            )
            if task is None:
                task = tasks[update.phase] = progress.add_task(label, total=update.total)
            progress.update(task, completed=update.done, total=update.total)

        return run_scan(targets, options, report)


@click.command("import-nmap")
@click.argument("files", nargs=-1, required=True, type=EXISTING_FILE)
@command_options
def import_nmap(ctx: Context, files: tuple[Path, ...]) -> None:
    """Store existing nmap XML scans (-oX) as if dynapot had run them."""
    from dynapot.discovery.nmap_xml import NmapXmlError, parse_nmap_xml

    runs = []
    for path in files:  # parse every file before storing any: all or nothing
        try:
            runs.append(parse_nmap_xml(path.read_bytes()))
        except NmapXmlError as exc:
            raise NmapXmlError(f"{path}: {exc}") from None
    observations = [obs for run in runs for obs in run.observations]
    stats = store_observations(ctx, observations, source=_named(files))
    click.echo(f"stored {stats.hosts_added} new and {stats.hosts_updated} known hosts, {stats.ports} ports")


def _named(files: tuple[Path, ...]) -> str:
    return str(files[0]) if len(files) == 1 else f"{len(files)} files"


@click.command("import-p0f")
@click.argument("files", nargs=-1, required=True, type=EXISTING_FILE)
@click.option(
    "--p0f-db",
    "p0f_db",
    type=EXISTING_FILE,
    help="p0f v3 fingerprint database that splits OS labels into name and version.",
    show_default=f"{DEFAULT_DATABASE}, when it is there",
)
@command_options
def import_p0f(ctx: Context, files: tuple[Path, ...], p0f_db: Path | None) -> None:
    """Store existing p0f logs (p0f 3's -o log, p0f 2's output) as if dynapot had run p0f."""
    from dynapot.discovery.p0f import P0fDatabase
    from dynapot.discovery.p0f_log import P0fSightings, label_names, read_p0f_log

    database = p0f_db or (DEFAULT_DATABASE if DEFAULT_DATABASE.is_file() else None)
    sightings = P0fSightings(label_names(P0fDatabase.load(database)) if database else None)
    for path in files:  # read every file before storing any: all or nothing
        read_p0f_log(path, sightings)
    observations = sightings.observations()
    stats = store_observations(ctx, observations, source=_named(files))
    guesses = sum(1 for obs in observations if obs.os is not None)
    click.echo(
        f"stored {stats.hosts_added} new and {stats.hosts_updated} known hosts, {guesses} OS guesses"
        f" ({sightings.lines} lines)"
    )


@click.command("hosts")
@click.option("--json", "as_json", is_flag=True, help="Print the hosts as JSON.")
@command_options
def hosts_command(ctx: Context, as_json: bool) -> None:
    """List the hosts in the inventory, real and virtual."""
    from dynapot.inventory import host_listing

    rows = host_listing(ctx.database(Access.READ))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("address", "kind", "OS", "detail", "ports", "seen by", "last seen")
    for row in rows:
        ports = ", ".join(f"{p['port']}/{p['proto']}" for p in row["ports"] if p["state"] == "open")
        detail = row["personality"] if row["virtual"] else row["os_detail"]
        table.add_row(
            *cells(
                row["ip"],
                "virtual" if row["virtual"] else "real",
                row["os"] or "?",
                detail or "",
                ports,
                row["tool"],
                row["last_seen"][:19],
            )
        )
    print_wide(table)
