"""Planning commands: `plan` (which honeypots where) and `honeyd-config` (the plan in honeyd's language)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from dynapot.cli.common import Context, command_options, err_console, output_option, print_wide
from dynapot.config import parse_network

__all__ = ["register"]

F = TypeVar("F", bound=Callable[..., Any])


def register(main: click.Group) -> None:
    """Add `plan` and `honeyd-config` to the `dynapot` group."""
    main.add_command(plan_command)
    main.add_command(honeyd_config_command)


def planning_options(func: F) -> F:
    """The network to fill and the planner's knobs, shared by both commands."""

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
) -> tuple[Any, Any]:
    """Plan the network (settings, then the options on top); with `apply`, record it as deployed."""
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


@click.command("plan")
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
    print_wide(table)
    click.echo(f"added {len(result.added)}, removed {len(result.removed)}, changed {len(result.changed)}")


@click.command("honeyd-config")
@planning_options
@output_option
@command_options
def honeyd_config_command(ctx: Context, output: Path | None, **kwargs: Any) -> None:
    """Write the plan in honeyd's configuration language."""
    from dynapot.files import write_atomically

    result, deployer = _make_plan(ctx, **kwargs)
    text = deployer.render(result)
    if output is None:
        sys.stdout.write(text)
    else:
        write_atomically(output, text)
        click.echo(f"wrote {len(result.virtual_hosts)} virtual hosts to {output}")
