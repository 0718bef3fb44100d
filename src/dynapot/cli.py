"""The `dynapot` command: every subcommand is a thin layer over the service modules.

Every subcommand accepts `--db URL` (else DYNAPOT_DB, else the settings file) and
`--config FILE` (else DYNAPOT_CONFIG). Errors the user can fix are printed as one
clear message with exit status 1; usage errors exit with 2.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from dynapot.config import ConfigError, Settings, load_settings, parse_network
from dynapot.daemon.cli import register as register_daemon
from dynapot.db import Database, DatabaseError, open_database
from dynapot.discovery.cli import register as register_passive
from dynapot.report_cli import register as register_reports
from dynapot.sensor.secret import DEFAULT_SECRET

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True)


def _console() -> Console:
    """Standard output; wide when it is a file or pipe, so that tables are not folded."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


class Context:
    """What every subcommand receives: settings, and the database opened on first use."""

    def __init__(self, settings: Settings, settings_path: Path | None = None) -> None:
        self.settings = settings
        self.settings_path = settings_path
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.settings.database_url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def _user_errors() -> tuple[type[BaseException], ...]:
    # Imported lazily: each module is only loaded by the commands that need it.
    from dynapot.discovery.active import ActiveScanError
    from dynapot.discovery.nmap_xml import NmapXmlError
    from dynapot.honeyd import HoneydConfigError
    from dynapot.personality.osdb import OsDbError

    return (ConfigError, DatabaseError, ActiveScanError, NmapXmlError, OsDbError, HoneydConfigError)


def command_options(func: F | None = None, *, settings_option: str = "--config") -> Any:
    """Add --db and the settings-file option, build the Context, turn known errors into clean exits.

    The settings option is --config everywhere except where a command needs that name for its
    own file (the sensor's honeyd configuration): there it is --settings.
    """

    def decorate(func: F) -> F:
        @click.option("--db", "db_url", metavar="URL", help="SQLAlchemy database URL (overrides DYNAPOT_DB).")
        @click.option(
            settings_option,
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Settings file (TOML; overrides DYNAPOT_CONFIG).",
        )
        @functools.wraps(func)
        def wrapper(*args: Any, db_url: str | None, config_path: Path | None, **kwargs: Any) -> Any:
            context: Context | None = None
            try:
                overrides = {"database_url": db_url} if db_url else {}
                context = Context(load_settings(config_path, overrides=overrides), config_path)
                return func(context, *args, **kwargs)
            except _user_errors() as exc:
                raise click.ClickException(str(exc)) from None
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            finally:
                if context is not None:
                    context.close()

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dynapot")
def main() -> None:
    """dynapot: dynamic honeypots that configure themselves from the real network."""


# --- database -------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@command_options
def db_upgrade(ctx: Context) -> None:
    """Create the tables or migrate them to the current schema."""
    click.echo(f"database {ctx.db.url} is at the current schema")


@main.command("expire")
@command_options
def expire_command(ctx: Context) -> None:
    """Delete entries older than their table's configured age."""
    from dynapot.inventory import expire

    counts = expire(ctx.db, ctx.settings.expiry)
    for table, count in counts.items():
        click.echo(f"{table}: {count} expired")


# --- discovery ------------------------------------------------------------------------------


@main.command("scan")
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
    from dynapot.inventory import record_observations

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
        click.echo(json.dumps(_hosts_json(ctx.db), indent=2))
    else:
        click.echo(
            f"stored {stats.hosts_added} new and {stats.hosts_updated} known hosts, {stats.ports} ports"
            f" ({len(result.timed_out)} timed out, {len(result.errors)} failed)"
        )


def _scan_with_progress(run_scan: Callable[..., Any], targets: list[str], options: Any) -> Any:
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


@main.command("import-nmap")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
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


def _hosts_json(database: Database) -> list[dict[str, Any]]:
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from dynapot.db.models import Host

    with database.session() as session:
        hosts = session.scalars(select(Host).options(selectinload(Host.ports))).all()
        return [
            {
                "ip": h.ip,
                "mac": h.mac,
                "virtual": h.is_virtual,
                "os": h.os.name if h.os else None,
                "os_detail": h.os_detail,
                "reliability": h.reliability,
                "personality": h.personality,
                "tool": h.tool,
                "last_seen": h.last_seen.isoformat(),
                "ports": [
                    {
                        "proto": p.protocol,
                        "port": p.port,
                        "state": p.state,
                        "service": p.service,
                        "product": p.product,
                    }
                    for p in sorted(h.ports, key=lambda p: (p.protocol, p.port))
                ],
            }
            for h in sorted(
                hosts, key=lambda h: tuple(int(x) for x in h.ip.split(".")) if "." in h.ip else (0,)
            )
        ]


@main.command("hosts")
@click.option("--json", "as_json", is_flag=True)
@command_options
def hosts_command(ctx: Context, as_json: bool) -> None:
    """List the hosts in the inventory, real and virtual."""
    rows = _hosts_json(ctx.db)
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
    _console().print(table)


# --- planning -------------------------------------------------------------------------------


def planning_options(func: F) -> F:
    @click.option("--network", "cidr", required=True, help="The network to fill, e.g. 198.18.0.0/24.")
    @click.option("--gateway", help="The network's gateway (never filled).")
    @click.option("--exclude", multiple=True, help="Address, range (a-b) or CIDR never filled; repeatable.")
    @click.option("--hold-off", type=float, help="Seconds an address must be unseen before it is free.")
    @click.option("--fill-ratio", type=click.FloatRange(0, 1), help="Share of free addresses to fill.")
    @click.option("--unknown-os", type=click.Choice(["group", "exclude"]), help="Hosts of unknown OS.")
    @click.option("--apply", is_flag=True, help="Record the plan as the current deployment.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _make_plan(
    ctx: Context, cidr: str, gateway: str | None, exclude: tuple[str, ...], apply: bool, **policy: Any
):
    from dynapot.config import NetworkSettings
    from dynapot.deploy import Deployer, load_catalog
    from dynapot.inventory import save_deployment

    configured = ctx.settings.network_for(str(parse_network(cidr)))
    network = NetworkSettings(
        cidr=configured.cidr,
        gateway=gateway or configured.gateway,
        exclude=tuple(configured.exclude) + exclude,
    )
    planner_settings = ctx.settings.planner.model_copy(
        update={key: value for key, value in policy.items() if value is not None}
    )
    deployer = Deployer(ctx.db, network, planner_settings, load_catalog(ctx.settings))
    result = deployer.plan()
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    if apply:
        save_deployment(ctx.db, result)
    return result, deployer


@main.command("plan")
@planning_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@command_options
def plan_command(ctx: Context, as_json: bool, **kwargs: Any) -> None:
    """Show which virtual honeypots to deploy on the free addresses of a network."""
    result, _ = _make_plan(ctx, **kwargs)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    click.echo(f"{result.real_hosts} real hosts, {result.free_ips} free addresses; virtual OS mix:")
    for name, count in result.quotas.items():
        click.echo(f"  {count:6d}  {name}")
    table = Table("address", "MAC", "OS group", "personality", "services")
    for vh in result.virtual_hosts:
        services = ", ".join(f"{s.port}/{s.proto} {s.service}" for s in vh.services)
        table.add_row(vh.ip, vh.mac, vh.os, vh.personality or "(none)", services)
    _console().print(table)
    click.echo(f"added {len(result.added)}, removed {len(result.removed)}, changed {len(result.changed)}")


@main.command("honeyd-config")
@planning_options
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@command_options
def honeyd_config_command(ctx: Context, output: Path | None, **kwargs: Any) -> None:
    """Write the plan in honeyd's configuration language."""
    from dynapot.deploy import write_atomically

    result, deployer = _make_plan(ctx, **kwargs)
    text = deployer.render(result)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text)
        click.echo(f"wrote {len(result.virtual_hosts)} virtual hosts to {output}")


# --- sensor ---------------------------------------------------------------------------------


@main.command("sensor")
@click.option("--interface", "-i", required=True, help="The interface the virtual hosts live on.")
@click.option(
    "--config",
    "honeyd_config",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="honeyd configuration (as written by `dynapot honeyd-config`).",
)
@click.option(
    "--log", "log_path", type=click.Path(dir_okay=False, path_type=Path), help="honeyd-format log file."
)
@click.option(
    "--user", default="nobody", show_default=True, help="Drop root to this user once the socket is open."
)
@click.option("--no-db", is_flag=True, help="Log to --log only, not to the database.")
@click.option(
    "--no-probe", is_flag=True, help="Answer at once, without first ARP-probing each address (RFC 5227)."
)
@click.option(
    "--status",
    "status_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the sensor's health here as JSON every few seconds.",
)
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
) -> None:
    """Answer for the configured virtual hosts on INTERFACE until SIGINT/SIGTERM.

    SIGHUP re-reads the configuration and applies only what changed.
    """
    import logging

    from dynapot.sensor.main import run_sensor
    from dynapot.sensor.rawsock import InterfaceError
    from dynapot.sensor.secret import SecretError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        summary = run_sensor(
            interface=interface,
            config_path=honeyd_config,
            db=None if no_db else ctx.db,
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
        )
    except (InterfaceError, SecretError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(summary, sort_keys=True), err=True)


# --- lab and demo ---------------------------------------------------------------------------


def _attach_lab() -> None:
    from dynapot.lab.cli import lab

    main.add_command(lab)


_attach_lab()
register_passive(main, command_options)
register_daemon(main, command_options)
register_reports(main, command_options)


@main.command("demo")
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
    """Build the lab network, scan it with nmap, plan honeypots, write honeyd.conf, tear down."""
    from dynapot.demo import run_demo

    run_demo(out_dir, db_url=ctx.settings.database_url if _db_given() else None)


def _db_given() -> bool:
    import os

    return "--db" in sys.argv or bool(os.environ.get("DYNAPOT_DB"))


if __name__ == "__main__":  # pragma: no cover
    main()
