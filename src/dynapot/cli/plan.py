"""Planning commands: `plan` (which honeypots where) and `honeyd-config` (the plan in honeyd's language).

Both only read the database, unless --apply records the plan as the current deployment; then
honeyd-config writes its file first and records the deployment only once the file is written.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.table import Table

from dynapot.cli.common import (
    ADDRESS_RANGE,
    IPV4_ADDRESS,
    NETWORK,
    Context,
    UserError,
    cells,
    command_options,
    err_console,
    output_option,
    print_wide,
    setting_option,
    shown,
)
from dynapot.config import NetworkSettings, Origin, describe_errors
from dynapot.db import Access

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])


def register(main: click.Group) -> None:
    """Add `plan` and `honeyd-config` to the `dynapot` group."""
    main.add_command(plan_command)
    main.add_command(honeyd_config_command)


def planning_options(func: F) -> F:
    """The network to fill and the planner's knobs, shared by both commands."""

    @click.option(
        "--network", "cidr", required=True, type=NETWORK, help="The network to fill, e.g. 198.18.0.0/24."
    )
    @click.option(
        "--gateway",
        type=IPV4_ADDRESS,
        help="The network's gateway (never filled).",
        show_default="the configured network's, else none",
    )
    @click.option(
        "--exclude",
        multiple=True,
        type=ADDRESS_RANGE,
        help="Address, range (a-b) or CIDR never filled; repeatable.",
        show_default="the configured network's",
    )
    @setting_option(
        "--hold-off", setting="planner.hold_off", type=float, help="Seconds unseen before an address is free."
    )
    @setting_option(
        "--fill-ratio", setting="planner.fill_ratio", type=float, help="Share of free addresses filled."
    )
    @setting_option(
        "--unknown-os",
        setting="planner.unknown_os",
        type=click.Choice(["infer", "exclude"]),
        help="A host no OS tool named: take the family its services, TTL or MAC vendor point to, "
        "or leave it out of the ratio.",
    )
    @click.option("--apply", is_flag=True, help="Record the plan as the current deployment.")
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _network(
    ctx: Context,
    cidr: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address | None,
    exclude: tuple[str, ...],
) -> NetworkSettings:
    """The network to plan: the configured one (if listed) with the options on top, checked."""
    try:
        ctx.settings.planner.check_network_size(cidr)
    except ValueError as exc:
        raise UserError(f"--network {cidr}: {exc}") from None
    configured = ctx.settings.network_for(str(cidr))
    given = ctx.settings.origin("networks")
    origins = {
        ("cidr",): Origin("option", "--network"),
        ("gateway",): Origin("option", "--gateway") if gateway else given,
        ("exclude",): Origin("option", "--exclude") if exclude else given,
    }
    try:
        return NetworkSettings(
            cidr=configured.cidr,
            gateway=gateway or configured.gateway,
            exclude=tuple(configured.exclude) + exclude,
        )
    except ValidationError as exc:
        raise UserError(describe_errors(exc, origins)) from None


def _make_plan(ctx: Context, network: NetworkSettings, apply: bool) -> tuple[Any, Any]:
    """Plan the network with the settings' policy (the options already on it)."""
    from dynapot.deploy import Deployer, load_catalog

    database = ctx.database(Access.WRITE if apply else Access.READ)
    deployer = Deployer(
        database, network, ctx.settings.planner, load_catalog(ctx.settings), backends=ctx.settings.backends
    )
    result = deployer.plan()
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    return result, deployer


def _record(ctx: Context, result: Any) -> None:
    from dynapot.inventory import save_deployment

    save_deployment(ctx.database(Access.WRITE), result)


@click.command("plan")
@planning_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (each host with its reason).")
@click.option(
    "--explain",
    is_flag=True,
    help="One line per virtual host: which real hosts' OS it mirrors, the osclass/CPE matched, why "
    "this fingerprint, whose services.",
)
@command_options
def plan_command(ctx: Context, apply: bool, as_json: bool, explain: bool, **network: Any) -> None:
    """Show which virtual honeypots to deploy on the free addresses of a network."""
    result, _ = _make_plan(ctx, _network(ctx, **network), apply)
    if apply:
        _record(ctx, result)
    if as_json:
        click.echo(json.dumps(result.as_json(), indent=2))
        return
    counted = len(result.groups)
    click.echo(
        f"{result.real_hosts} real hosts ({counted} counted, {len(result.left_out)} left out), "
        f"{result.free_ips} free addresses; virtual OS mix:"
    )
    for name, count in result.quotas.items():
        click.echo(f"  {count:6d}  {shown(name)}")
    if explain:  # explanations quote scanned hosts' OS labels and products: escaped like the rest
        for vh in result.virtual_hosts:
            reason = result.explanations.get(vh.ip, "")
            click.echo(f"{vh.ip}  {shown(vh.personality or '(none)')}  <- {shown(reason)}")
        click.echo(f"added {len(result.added)}, removed {len(result.removed)}, changed {len(result.changed)}")
        return
    table = Table("address", "MAC", "OS group", "personality", "services")
    for vh in result.virtual_hosts:
        redirected = result.redirects.get(vh.ip, {})
        services = ", ".join(
            f"{s.port}/{s.proto} -> {redirected[s.port]}"
            if s.proto == "tcp" and s.port in redirected
            else f"{s.port}/{s.proto} {s.service}"
            for s in vh.services
        )
        table.add_row(*cells(vh.ip, vh.mac, vh.os, vh.personality or "(none)", services))
    print_wide(table)
    click.echo(f"added {len(result.added)}, removed {len(result.removed)}, changed {len(result.changed)}")


@click.command("honeyd-config")
@planning_options
@output_option
@command_options
def honeyd_config_command(ctx: Context, apply: bool, output: Path | None, **network: Any) -> None:
    """Write the plan in honeyd's configuration language."""
    from dynapot.files import staged_write

    result, deployer = _make_plan(ctx, _network(ctx, **network), apply)
    text = deployer.render(result)
    if output is None:
        sys.stdout.write(text)
        if apply:
            _record(ctx, result)
        return
    try:
        # The deployment is recorded only once the file is written, and the file kept only then.
        with staged_write(output, text):
            if apply:
                _record(ctx, result)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write {output}: {exc.strerror or exc}; nothing recorded"
        ) from None
    click.echo(f"wrote {len(result.virtual_hosts)} virtual hosts to {output}")
