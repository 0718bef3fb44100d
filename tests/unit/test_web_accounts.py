"""Accounts of the web interface: no default account, argon2 hashes, lockout, tokens, sessions, audit.

Each test runs on SQLite and on PostgreSQL (the shared `db` fixture).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from dynapot.cli import main
from dynapot.db import open_database
from dynapot.db.models import ApiToken, AuditEntry, User, utcnow
from dynapot.web import accounts
from dynapot.web.accounts import AccountError, LoginRefused

PASSWORD = "correct horse battery staple"


def login(db, name="alice", password=PASSWORD, **kwargs):
    return accounts.authenticate(db, name, password, failures=3, lock_seconds=600, **kwargs)


def test_a_new_database_has_no_account_and_hashes_are_argon2(db):
    assert accounts.list_users(db) == []
    with pytest.raises(LoginRefused):
        login(db, "admin", "admin")
    accounts.create_user(db, "alice", PASSWORD, "admin")
    with db.session() as session:
        stored = session.scalar(select(User.password_hash))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


@pytest.mark.parametrize(
    ("name", "password", "role", "reason"),
    [
        ("alice", "short", "admin", "too short"),
        ("al ice", PASSWORD, "admin", "not a user name"),
        ("alice", PASSWORD, "root", "not a role"),
        ("alice", "x" * 2000, "admin", "too long"),
    ],
)
def test_bad_accounts_are_refused_with_the_reason(db, name, password, role, reason):
    with pytest.raises(AccountError, match=reason):
        accounts.create_user(db, name, password, role)
    assert accounts.list_users(db) == []


def test_a_name_is_taken_once(db):
    accounts.create_user(db, "alice", PASSWORD, "admin")
    with pytest.raises(AccountError, match="already"):
        accounts.create_user(db, "alice", PASSWORD, "viewer")


def test_lockout_after_repeated_failures_even_for_the_right_password_then_it_ends(db):
    accounts.create_user(db, "alice", PASSWORD, "viewer")
    for _ in range(3):
        with pytest.raises(LoginRefused, match="wrong user name or password"):
            login(db, password="wrong password!")
    with pytest.raises(LoginRefused, match="locked until"):
        login(db)
    later = utcnow() + timedelta(seconds=601)
    who = login(db, now=later)
    assert (who.name, who.role, who.is_admin) == ("alice", "viewer", False)
    (row,) = accounts.list_users(db)
    assert row["failed_logins"] == 0 and row["locked_until"] is None


def test_a_success_resets_the_count_and_an_unknown_name_reads_like_a_wrong_password(db):
    accounts.create_user(db, "alice", PASSWORD, "admin")
    for _ in range(2):
        with pytest.raises(LoginRefused):
            login(db, password="nope nope nope")
    login(db)
    for _ in range(2):
        with pytest.raises(LoginRefused):
            login(db, password="nope nope nope")
    assert login(db).name == "alice"  # never three in a row: not locked
    with pytest.raises(LoginRefused) as unknown:
        login(db, "mallory")
    with pytest.raises(LoginRefused) as wrong:
        login(db, password="nope nope nope")
    assert str(unknown.value) == str(wrong.value)


def test_unlock_clears_a_lockout(db):
    accounts.create_user(db, "alice", PASSWORD, "admin")
    for _ in range(3):
        with pytest.raises(LoginRefused):
            login(db, password="nope nope nope")
    accounts.unlock_user(db, "alice")
    assert login(db).name == "alice"


def test_tokens_are_stored_hashed_and_can_be_revoked_or_expire(db):
    accounts.create_user(db, "alice", PASSWORD, "admin")
    token = accounts.create_token(db, "alice", "script")
    with db.session() as session:
        (row,) = session.scalars(select(ApiToken)).all()
    assert token not in row.token_hash and len(row.token_hash) == 64
    assert accounts.token_identity(db, token).name == "alice"
    assert accounts.token_identity(db, token + "x") is None
    accounts.revoke_token(db, row.id)
    assert accounts.token_identity(db, token) is None
    short = accounts.create_token(db, "alice", "short", ttl=timedelta(minutes=5))
    assert accounts.token_identity(db, short) is not None
    assert accounts.token_identity(db, short, now=utcnow() + timedelta(minutes=6)) is None


def test_sessions_carry_a_csrf_token_and_end_at_logout_or_expiry(db):
    accounts.create_user(db, "alice", PASSWORD, "admin")
    cookie, who = accounts.start_session(db, login(db), hours=1)
    again = accounts.session_identity(db, cookie)
    assert again == who and who.csrf_token and len(who.csrf_token) >= 32
    assert accounts.session_identity(db, cookie, now=utcnow() + timedelta(hours=2)) is None
    accounts.end_session(db, cookie)
    assert accounts.session_identity(db, cookie) is None


def test_deleting_a_user_removes_tokens_and_is_audited(db):
    accounts.create_user(db, "alice", PASSWORD, "admin")
    token = accounts.create_token(db, "alice", "script")
    accounts.delete_user(db, "alice", actor="root")
    assert accounts.token_identity(db, token) is None
    with db.session() as session:
        actions = [
            (a.actor, a.action, a.target) for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
    assert actions == [
        ("cli", "user.create", "alice"),
        ("cli", "token.create", "alice/script"),
        ("root", "user.delete", "alice"),
    ]


def test_cli_create_user_reads_the_password_from_stdin_or_generates_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    made = runner.invoke(
        main, ["admin", "create-user", "alice", "--role", "admin", "--db", url], input=PASSWORD + "\n"
    )
    assert made.exit_code == 0, made.output
    weak = runner.invoke(
        main, ["admin", "create-user", "bob", "--role", "viewer", "--db", url], input="abc\n"
    )
    assert weak.exit_code == 2 and "too short" in weak.output
    generated = runner.invoke(
        main, ["admin", "create-user", "carol", "--role", "viewer", "--generate", "--db", url]
    )
    assert generated.exit_code == 0
    password = generated.stdout.split("(shown once): ")[1].strip()
    listing = runner.invoke(main, ["admin", "list-users", "--db", url])
    assert "alice" in listing.stdout and "carol" in listing.stdout and "bob" not in listing.stdout
    database = open_database(url)
    try:
        assert login(database).role == "admin"
        assert login(database, "carol", password).role == "viewer"
    finally:
        database.dispose()
    twice = runner.invoke(
        main, ["admin", "create-user", "alice", "--role", "admin", "--db", url], input=PASSWORD + "\n"
    )
    assert twice.exit_code == 2 and "already" in twice.output
    token = runner.invoke(main, ["admin", "create-token", "ci", "--user", "alice", "--db", url])
    assert token.exit_code == 0 and token.stdout.startswith("dp_")
    nobody = runner.invoke(main, ["admin", "create-token", "ci", "--user", "zed", "--db", url])
    assert nobody.exit_code == 2 and "no user" in nobody.output


def test_a_new_password_ends_the_sessions_and_the_old_one(db):
    accounts.create_user(db, "alice", PASSWORD, "admin")
    cookie, _ = accounts.start_session(db, login(db), hours=1)
    with pytest.raises(AccountError, match="too short"):
        accounts.set_password(db, "alice", "short")
    accounts.set_password(db, "alice", "a brand new passphrase")
    assert accounts.session_identity(db, cookie) is None
    with pytest.raises(LoginRefused):
        login(db)
    assert login(db, password="a brand new passphrase").name == "alice"


def test_migration_0010_turns_the_old_endless_lock_into_a_disabled_account_and_back(db):
    import sqlalchemy as sa
    from alembic import command
    from sqlalchemy import text

    from dynapot.db.engine import alembic_config, upgrade

    accounts.create_user(db, "alice", PASSWORD, "admin")
    accounts.create_user(db, "bob", PASSWORD, "viewer")
    command.downgrade(alembic_config(db.engine), "0009")
    users = sa.table("users", sa.column("name"), sa.column("locked_until", sa.DateTime(timezone=True)))
    forever = datetime(9999, 12, 31, tzinfo=UTC)  # how 0007-0009 disabled an account
    with db.engine.begin() as connection:
        connection.execute(users.update().where(users.c.name == "bob").values(locked_until=forever))
    upgrade(db.engine)
    users = {u["name"]: u for u in accounts.list_users(db)}
    assert users["bob"]["disabled"] and users["bob"]["locked_until"] is None
    assert not users["alice"]["disabled"]
    with pytest.raises(LoginRefused, match="disabled"):
        login(db, "bob")
    command.downgrade(alembic_config(db.engine), "0009")
    with db.engine.connect() as connection:
        locked = connection.execute(text("SELECT name, locked_until FROM users ORDER BY name")).all()
    assert [name for name, until in locked if until is not None] == ["bob"]
    upgrade(db.engine)
