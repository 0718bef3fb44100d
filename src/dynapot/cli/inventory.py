"""The inventory's commands: `db upgrade`, `expire`, `scan`, `import-nmap`, `import-p0f`, `hosts`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from dynapot.cli.common import EXISTING_FILE, Context, command_options, err_console, print_wide
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
    """Create the tables or migrate them to the current schema."""
    click.echo(f"database {ctx.db.url} is at the current schema")


@click.command("expire")
@command_options
def expire_command(ctx: Context) -> None:
    """Delete entries older than their table's configured age."""
    from dynapot.inventory import expire

    counts = expire(ctx.db, ctx.settings.expiry)
    for table, count in counts.items():
        click.echo(f"{table}: {count} expired")


@click.command("scan")
@click.argument("targets", nargs=-1, required=True)
@click.option("-N", "--parallel", type=int, help="Scans run at once (the paper's N).")
@click.option("-D", "--interval", type=float, help="Seconds between batches (the paper's D).")
@click.option("--polite/--normal", default=None, help="nmap's polite timing (probes 0.4 s apart).")
@click.option("--host-timeout", type=float, help="Give up on one host after this many seconds.")
@click.option("--ports", help="Ports to scan, in nmap -p syntax (default: nmap's top 100).")
@click.option("--os/--no-os", "os_detection", default=None, help="nmap OS detection (-O).")
@click.option("--versions/--no-versions", "version_detection", default=None, help="Service versions (-sV).")
@click.option("--nmap", "nmap_path", help="Path of the nmap binary.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored hosts as JSON.")
@command_options
def scan_command(ctx: Context, targets: tuple[str, ...], as_json: bool, **knobs: Any) -> None:
    """Probe TARGETS (addresses or CIDR networks) with nmap and store what it finds."""
    from dynapot.discovery.active import run_scan, scan_options
    from dynapot.inventory import host_listing, record_observations

    active = ctx.settings.discovery.active.model_copy(
        update={key: value for key, value in knobs.items() if value is not None}
    )
    options = scan_options(active)
    result = _scan_with_progress(run_scan, list(targets), options)
    stats = record_observations(ctx.db, result.observations, ctx.settings.discovery.fusion)
    for ip in result.timed_out:
        err_console.print(f"[yellow]timed out:[/] {ip}")
    for ip, error in result.errors.items():
        err_console.print(f"[red]failed:[/] {ip}: {error}")
    if as_json:
        click.echo(json.dumps(host_listing(ctx.db), indent=2))
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
    from dynapot.inventory import record_observations

    runs = []
    for path in files:  # parse every file before storing any: all or nothing
        try:
            runs.append(parse_nmap_xml(path.read_bytes()))
        except NmapXmlError as exc:
            raise NmapXmlError(f"{path}: {exc}") from None
    observations = [obs for run in runs for obs in run.observations]
    stats = record_observations(ctx.db, observations, ctx.settings.discovery.fusion)
    click.echo(f"stored {stats.hosts_added} new and {stats.hosts_updated} known hosts, {stats.ports} ports")


@click.command("import-p0f")
@click.argument("files", nargs=-1, required=True, type=EXISTING_FILE)
@click.option(
    "--p0f-db",
    "p0f_db",
    type=EXISTING_FILE,
    help=f"p0f v3 fingerprint database that splits OS labels into name and version "
    f"(default: {DEFAULT_DATABASE}, when it is there).",
)
@command_options
def import_p0f(ctx: Context, files: tuple[Path, ...], p0f_db: Path | None) -> None:
    """Store existing p0f logs (p0f 3's -o log, p0f 2's output) as if dynapot had run p0f."""
    from dynapot.discovery.p0f import P0fDatabase
    from dynapot.discovery.p0f_log import P0fSightings, label_names, read_p0f_log
    from dynapot.inventory import record_observations

    database = p0f_db or (DEFAULT_DATABASE if DEFAULT_DATABASE.is_file() else None)
    sightings = P0fSightings(label_names(P0fDatabase.load(database)) if database else None)
    for path in files:  # read every file before storing any: all or nothing
        read_p0f_log(path, sightings)
    observations = sightings.observations()
    stats = record_observations(ctx.db, observations, ctx.settings.discovery.fusion)
    guesses = sum(1 for obs in observations if obs.os is not None)
    click.echo(
        f"stored {stats.hosts_added} new and {stats.hosts_updated} known hosts, {guesses} OS guesses"
        f" ({sightings.lines} lines)"
    )


@click.command("hosts")
@click.option("--json", "as_json", is_flag=True)
@command_options
def hosts_command(ctx: Context, as_json: bool) -> None:
    """List the hosts in the inventory, real and virtual."""
    from dynapot.inventory import host_listing

    rows = host_listing(ctx.db)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("address", "kind", "OS", "detail", "ports", "seen by", "last seen")
    for row in rows:
        ports = ", ".join(f"{p['port']}/{p['proto']}" for p in row["ports"] if p["state"] == "open")
        detail = row["personality"] if row["virtual"] else row["os_detail"]
        table.add_row(
            row["ip"],
            "virtual" if row["virtual"] else "real",
            row["os"] or "?",
            detail or "",
            ports,
            row["tool"],
            row["last_seen"][:19],
        )
    print_wide(table)
