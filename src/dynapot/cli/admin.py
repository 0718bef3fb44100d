"""`dynapot admin ...`: the web interface's accounts and API tokens, and its audit log.

There is no default account: `dynapot admin create-user NAME --role admin` makes the first
administrator. The password is read from standard input (one line) when it is not a
terminal; otherwise it is asked for twice; `--generate` makes a random one and prints it once.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import timedelta

import click
from rich.table import Table

from dynapot.cli.common import Context, UserError, cells, command_options, print_wide, shown
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


#: Hosts of each part of a held plan's diff printed by `held-plan` (--json prints what is stored).
SHOWN = 20


@admin.command("held-plan")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON, each part of the diff in full.")
@command_options
def held_plan_command(ctx: Context, as_json: bool) -> None:
    """The plan waiting for an admin (planner.apply = "hold"): what it would change, and its digest."""
    from dynapot.web.plan_queries import plan_view

    view = plan_view(ctx.database(Access.READ), ctx.settings)
    if as_json:
        click.echo(json.dumps(view, indent=2))
        return
    pending = view["pending"]
    click.echo(f"apply mode: {view['apply']}; virtual hosts deployed: {view['deployed_virtual_hosts']}")
    if pending is None:
        click.echo("no plan is waiting: nothing to change")
        return
    counts = ", ".join(f"{n} {part}" for part, n in pending["counts"].items() if n) or "no change"
    click.echo(f"{pending['status']} plan for {pending['network']} since {pending['created_at']}: {counts}")
    if pending["approved_by"]:
        click.echo(f"approved by {pending['approved_by']} at {pending['approved_at']}")
    for part in ("added", "removed", "changed", "joined", "left"):
        rows = pending[part]
        for row in rows[:SHOWN]:
            click.echo(f"  {part:8} {shown(_plan_row(row))}")
        if len(rows) > SHOWN:
            click.echo(f"  {part:8} ... {len(rows) - SHOWN} more (--json lists them)")
    for warning in pending["warnings"]:
        click.echo(f"  warning  {shown(warning)}")
    click.echo(f"digest: {pending['digest']}")
    if pending["status"] == "pending":
        click.echo(f"apply it with: dynapot admin apply-plan {pending['digest']}")


def _plan_row(row: object) -> str:
    """One host of a plan's diff on one line: address, personality, ports, and why."""
    if not isinstance(row, dict):
        return str(row)
    services = [s for s in row.get("services") or [] if isinstance(s, dict)]
    ports = ",".join(f"{s.get('port')}/{s.get('proto')}" for s in services)
    parts = [str(row.get("ip", "?")), str(row.get("personality") or row.get("group") or "")]
    if ports:
        parts.append(f"[{ports}]")
    if row.get("why"):
        parts.append(f"({row['why']})")
    return " ".join(part for part in parts if part)


@admin.command("apply-plan")
@click.argument("digest")
@command_options
def apply_plan_command(ctx: Context, digest: str) -> None:
    """Approve the held plan with this DIGEST (`held-plan`): the daemon deploys it on its next round
    if its plan is still the same; audited."""
    from dynapot.deploy.review import PlanChanged
    from dynapot.web.plan_actions import approve_plan

    try:
        row = approve_plan(ctx.database(Access.WRITE), _actor(), digest.strip().lower())
    except PlanChanged as exc:
        raise UserError(f"{exc} (`dynapot admin held-plan` shows the plan pending now)") from None
    click.echo(f"approved the plan for {row['network']}: the daemon deploys it on its next round", err=True)


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


@admin.command("settings-access")
@click.option(
    "--grant",
    is_flag=True,
    help="Give the settings file to the web account's group (root only; refuses links and shared folders).",
)
@click.option(
    "--write",
    is_flag=True,
    help="For a standalone `dynapot web` that saves the file itself (the account can then change every "
    "setting); by default read access only: under `dynapot run` the daemon writes the file.",
)
@command_options
def settings_access_command(ctx: Context, grant: bool, write: bool) -> None:
    """Whether the web interface (as `web.user`) can read the settings file (--config; --write: save
    it), and the exact commands that let it; --grant runs them: the file to that account's primary
    group, g+r, never g+w or o+w (--write: the folder and the file, g+rwx and g+rw). Exit status 1:
    it cannot."""
    from dynapot.daemon.settings_access import AccessRefused, check
    from dynapot.daemon.settings_access import grant as give

    if ctx.settings_path is None:
        raise UserError("no settings file: give --config FILE (or DYNAPOT_CONFIG)")
    user = ctx.settings.web.user
    if grant:
        try:
            done = give(user, ctx.settings_path, write=write)
        except (AccessRefused, OSError) as exc:
            raise UserError(f"settings access not granted: {exc}") from None
        for line in done:
            click.echo(shown(line))
    access = check(user, ctx.settings_path, write=write)
    if access.problem is None:
        can = "replace" if write else "read"
        click.echo(f"{shown(user)} can {can} {shown(str(access.path))}")
        click.echo(f"note: {access.note}")
        return
    click.echo(shown(access.problem))
    if access.commands:
        flags = "--write --grant" if write else "--grant"
        click.echo(f"as root, `dynapot admin settings-access {flags}` runs:")
        for command in access.commands:
            click.echo(f"  {shown(command)}")
    raise SystemExit(1)
