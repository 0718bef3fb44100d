"""`dynapot honeyd-check FILE`: validate a honeyd configuration without starting anything.

It reads the file as the sensor would (grammar, includes, then every personality against the
installed nmap-os-db, every ethernet vendor against nmap-mac-prefixes, MACs unique) and prints
what it holds and every note: what the file asks that the sensor does not do, or does
differently. A problem is one line naming the file, the line and the reason, with exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from dynapot.cli.common import EXISTING_FILE, Context, command_options, shown

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `honeyd-check` to the `dynapot` group."""
    main.add_command(honeyd_check_command)


@click.command("honeyd-check")
@click.argument("path", metavar="FILE", type=EXISTING_FILE)
@command_options
def honeyd_check_command(ctx: Context, path: Path) -> None:
    """Check a honeyd configuration FILE as the sensor would read it (exit 0, or 2 with the reason)."""
    from dynapot.honeyd import load_config
    from dynapot.honeyd.config import is_ipv4
    from dynapot.personality.catalog import MacVendors
    from dynapot.personality.osdb import load_osdb
    from dynapot.sensor.config import build_sensor_config

    config = load_config(path)
    sensor = build_sensor_config(
        config,
        path.read_text(encoding="utf-8"),
        fingerprints=load_osdb(ctx.settings.nmap_os_db),
        mac_vendors=MacVendors.load(ctx.settings.nmap_mac_prefixes),
        source=str(path),
    )
    named = len([t for t in config.templates.values() if not t.is_host_template and not is_ipv4(t.name)])
    routers = len(config.topology.routers)
    click.echo(
        f"{shown(path)}: valid; {named} templates, {len(sensor.hosts)} addresses bound, {routers} routers, "
        f"{len(sensor.notes)} notes"
    )
    for note in sensor.notes:
        click.echo(f"  note: {shown(note)}")
