"""`dynapot web`: serve the admin web interface (pages, live feed, JSON API under /api/v1).

It binds 127.0.0.1 by default and speaks TLS with a certificate made at first start (kept in
web.data_dir, the key 0600) unless --cert/--key name the admin's own, or --no-tls asks for plain
HTTP (behind a TLS proxy, or for tests). The settings page changes the file given with
--config, which the daemon re-reads (with --settings-by-daemon it asks the running daemon to
write it); without one, settings are shown and not changed.
Accounts come from `dynapot admin create-user`: there is no default one.
"""

from __future__ import annotations

from pathlib import Path

import click

from dynapot.cli.common import EXISTING_FILE, Context, UserError, command_options
from dynapot.db import Access

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `web` to the `dynapot` group."""
    main.add_command(web_command)


def _listen(ctx: click.Context, param: click.Parameter, value: str) -> object:
    from dynapot.web.server import parse_listen

    try:
        return parse_listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("web")
@click.option(
    "--listen", default="127.0.0.1:8443", show_default=True, callback=_listen, help="HOST:PORT to serve on."
)
@click.option("--no-tls", is_flag=True, help="Plain HTTP (cookies then lose their Secure flag).")
@click.option("--cert", type=EXISTING_FILE, help="PEM certificate (with --key).", show_default="self-signed")
@click.option("--key", type=EXISTING_FILE, help="PEM private key of --cert.")
@click.option(
    "--user",
    help="When started as root: drop root to this user once the socket listens, the TLS key is read "
    "and the database is open (`dynapot run` starts it so, as web.user).",
)
@click.option(
    "--settings-by-daemon",
    is_flag=True,
    help="Hand settings changes to the running `dynapot run`, which writes --config as root, instead "
    "of writing the file (`dynapot run` starts it so: its web account only reads the file).",
)
@command_options
def web_command(
    ctx: Context,
    listen: object,
    no_tls: bool,
    cert: Path | None,
    key: Path | None,
    user: str | None,
    settings_by_daemon: bool,
) -> None:
    """Serve the admin web interface."""
    from dynapot.sensor.privileges import PrivilegeError
    from dynapot.web.context import WebContext
    from dynapot.web.server import ListenError, serve

    if (cert is None) != (key is None):
        raise UserError("--cert and --key go together")
    if no_tls and cert is not None:
        raise UserError("--no-tls and --cert contradict each other")
    database = ctx.database(Access.WRITE)
    web = WebContext(
        database, ctx.settings, ctx.settings_path, tls=not no_tls, settings_by_daemon=settings_by_daemon
    )
    try:
        serve(web, listen, cert=cert, key=key, user=user)  # type: ignore[arg-type]
    except ListenError as exc:
        raise click.ClickException(str(exc)) from None
    except PrivilegeError as exc:
        raise UserError(f"--user {user}: {exc}") from None
