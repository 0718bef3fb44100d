"""`dynapot admin ...`: the web interface's accounts and API tokens, and its audit log.

There is no default account: `dynapot admin create-user NAME --role admin` makes the first
administrator. The password is read from standard input (one line) when it is not a
terminal; otherwise it is asked for twice; `--generate` makes a random one and prints it once.
"""

from __future__ import annotations

import getpass
import sys
from datetime import timedelta

import click
from rich.table import Table

from dynapot.cli.common import Context, UserError, cells, command_options, print_wide
from dynapot.db import Access

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add the `admin` group to the `dynapot` group."""
    main.add_command(admin)


@click.group("admin")
def admin() -> None:
    """Accounts and API tokens of the web interface (`dynapot web`)."""


def _actor() -> str:
    """Who the audit log names for a change made here: the local account running the command."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def _read_password(generate: bool) -> tuple[str, bool]:
    """(password, generated): from --generate, standard input, or asked twice on a terminal."""
    if generate:
        from dynapot.web.accounts import generate_password

        return generate_password(), True
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UserError("no password on standard input (give one line, or --generate)")
        return password, False
    return click.prompt("Password", hide_input=True, confirmation_prompt=True), False


@admin.command("create-user")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "viewer"]), help="admin may change settings.")
@click.option("--generate", is_flag=True, help="Make a random password and print it once.")
@command_options
def create_user_command(ctx: Context, name: str, role: str | None, generate: bool) -> None:
    """Create an account; the password comes from standard input (or --generate)."""
    from dynapot.web.accounts import AccountError, create_user

    if role is None:  # required, said on one line (click's own message spans several)
        raise UserError("--role is required: admin (may change settings) or viewer")
    password, generated = _read_password(generate)
    try:
        create_user(ctx.database(Access.CREATE), name, password, role, actor=_actor())
    except AccountError as exc:
        raise UserError(str(exc)) from None
    if generated:
        click.echo(f"password for {name} (shown once): {password}")
    click.echo(f"created {role} {name}", err=True)


@admin.command("set-password")
@click.argument("name")
@click.option("--generate", is_flag=True, help="Make a random password and print it once.")
@command_options
def set_password_command(ctx: Context, name: str, generate: bool) -> None:
    """Give an account a new password (standard input, or --generate); its logins end."""
    from dynapot.web.accounts import AccountError, set_password

    password, generated = _read_password(generate)
    try:
        set_password(ctx.database(Access.WRITE), name, password, actor=_actor())
    except AccountError as exc:
        raise UserError(str(exc)) from None
    if generated:
        click.echo(f"password for {name} (shown once): {password}")
    click.echo(f"new password for {name}", err=True)


@admin.command("list-users")
@command_options
def list_users_command(ctx: Context) -> None:
    """Every account, its role, failed logins in a row and lockout."""
    from dynapot.web.accounts import list_users

    table = Table("name", "role", "failed", "locked until", "disabled", "last login")
    for user in list_users(ctx.database(Access.READ)):
        table.add_row(
            *cells(
                user["name"],
                user["role"],
                user["failed_logins"],
                user["locked_until"],
                "yes" if user["disabled"] else "",
                user["last_login"],
            )
        )
    print_wide(table)


def _account_command(name: str, action: str, done: str, help_text: str) -> None:
    @admin.command(name, help=help_text)
    @click.argument("user")
    @command_options
    def command(ctx: Context, user: str) -> None:
        from dynapot.web import accounts

        try:
            getattr(accounts, action)(ctx.database(Access.WRITE), user, actor=_actor())
        except accounts.AccountError as exc:
            raise UserError(str(exc)) from None
        click.echo(f"{done} {user}", err=True)


_account_command("delete-user", "delete_user", "deleted", "Delete an account with its tokens and sessions.")
_account_command("unlock-user", "unlock_user", "unlocked", "Clear an account's lockout.")
_account_command(
    "disable-user",
    "disable_user",
    "disabled",
    "Turn an account off: its sessions end, its tokens are revoked.",
)
_account_command("enable-user", "enable_user", "enabled", "Let a disabled account log in again.")


@admin.command("create-token")
@click.argument("name")
@click.option("--user", required=True, help="The account the token acts as.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="Expire after this many days.")
@command_options
def create_token_command(ctx: Context, name: str, user: str, days: float | None) -> None:
    """Make an API token for scripts (Authorization: Bearer ...); printed once."""
    from dynapot.web.accounts import AccountError, create_token

    try:
        token = create_token(
            ctx.database(Access.WRITE), user, name, ttl=timedelta(days=days) if days else None, actor=_actor()
        )
    except AccountError as exc:
        raise UserError(str(exc)) from None
    click.echo(token)


@admin.command("list-tokens")
@command_options
def list_tokens_command(ctx: Context) -> None:
    """API tokens (never their secret)."""
    from dynapot.web.accounts import list_tokens

    table = Table("id", "user", "name", "created", "expires", "last used", "revoked")
    for token in list_tokens(ctx.database(Access.READ)):
        table.add_row(*cells(*token.values()))
    print_wide(table)


@admin.command("revoke-token")
@click.argument("token_id", type=int)
@command_options
def revoke_token_command(ctx: Context, token_id: int) -> None:
    """Revoke an API token by its id (`list-tokens`)."""
    from dynapot.web.accounts import AccountError, revoke_token

    try:
        revoke_token(ctx.database(Access.WRITE), token_id, actor=_actor())
    except AccountError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"revoked token {token_id}", err=True)


@admin.command("audit")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@command_options
def audit_command(ctx: Context, limit: int) -> None:
    """The newest entries of the audit log: who changed what, when, from what to what."""
    from sqlalchemy import select

    from dynapot.db.models import AuditEntry

    table = Table("time", "who", "action", "target", "old", "new")
    with ctx.database(Access.READ).session() as session:
        for row in session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)):
            table.add_row(*cells(row.time, row.actor, row.action, row.target, row.old_value, row.new_value))
    print_wide(table)
