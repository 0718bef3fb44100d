"""The `dynapot` command: every subcommand is a thin layer over the library.

`main` is the click group; each module here registers one group of commands on it
(`register(main)`): `inventory` (db upgrade, expire, scan, import-nmap, import-p0f, hosts),
`passive` (fingerprint, watch), `plan` (plan, honeyd-config), `honeyd` (honeyd-check),
`sensor`, `daemon` (run, status), `reports` (report, findings), `lab` (lab up/list/down,
demo), `collector`, `sessions` (sessions, sessions replay), `admin` (the web interface's
accounts and tokens), `web` (the admin web interface) and `agent` (the backends' recorder).
What they share (the Context, --db and --config, consoles, the user-error mapping, parameter
types) is in `common`.

Every subcommand accepts `--db URL` (else DYNAPOT_DB, else the settings file) and
`--config FILE` (else DYNAPOT_CONFIG); `--help` shows every option's default. A mistake in
what the user gave (option, argument, setting, environment variable, named file) is one line
naming it, its value (unless secret) and what is allowed, with exit status 2 and nothing
written; a failure while running exits with 1 (`common` has the rules).
"""

from __future__ import annotations

import click

from dynapot.cli import (
    admin,
    agent,
    collector,
    daemon,
    honeyd,
    inventory,
    lab,
    passive,
    plan,
    reports,
    sensor,
    sessions,
    web,
)
from dynapot.cli.common import command_options

__all__ = ["command_options", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="dynapot")
def main() -> None:
    """dynapot: dynamic honeypots that configure themselves from the real network."""


for _commands in (
    inventory,
    plan,
    honeyd,
    sensor,
    lab,
    passive,
    daemon,
    reports,
    collector,
    sessions,
    admin,
    web,
    agent,
):
    _commands.register(main)
