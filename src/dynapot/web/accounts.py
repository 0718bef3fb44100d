"""Accounts of the admin interface: users, logins with lockout, API tokens, browser sessions, audit.

Passwords are kept as argon2id hashes (argon2-cffi's defaults, rehashed when they change).
API tokens and session cookies are 256-bit random strings; only their SHA-256 is stored, which
is enough for secrets of that strength and lets a request be looked up by its hash. There is
no default account: the first administrator comes from `dynapot admin create-user`.

Every function takes the database and returns plain values or raises `AccountError` with a
one-line reason fit to show the user (never whether it was the name or the password that
was wrong).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from dynapot.db import Database
from dynapot.db.models import ApiToken, AuditEntry, User, WebSession, utcnow

__all__ = [
    "ROLES",
    "AccountError",
    "Identity",
    "LoginRefused",
    "audit",
    "audit_entries",
    "authenticate",
    "create_token",
    "create_user",
    "delete_user",
    "disable_user",
    "enable_user",
    "end_session",
    "generate_password",
    "list_tokens",
    "list_users",
    "revoke_token",
    "session_identity",
    "set_password",
    "set_role",
    "start_session",
    "token_identity",
    "unlock_user",
]

ROLES = ("admin", "viewer")
Role = Literal["admin", "viewer"]
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 hashes any length; a bound keeps a login from costing more than it should


_hasher = PasswordHasher()
# Verified against when the name is unknown, so that a login takes as long for any name.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message is one line for the user."""


class LoginRefused(AccountError):
    """Wrong name or password, or a locked account (the message does not say which of the first two)."""


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: the user, the role, and for a browser session its CSRF token."""

    user_id: int
    name: str
    role: str
    csrf_token: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise AccountError(
            f"{name[:80]!r} is not a user name (1-64 letters, digits, '.', '_', '-', starting with one "
            "of the first two)"
        )
    return name


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD} characters")


def generate_password() -> str:
    """A new random password (about 120 bits), printed once to whoever creates the account."""
    return secrets.token_urlsafe(15)


def audit(
    db: Database, actor: str, action: str, target: str, old: str | None = None, new: str | None = None
) -> None:
    """One row of the audit log (the caller masks secrets before)."""
    with db.session() as session:
        session.add(
            AuditEntry(
                time=utcnow(), actor=actor, action=action, target=target[:255], old_value=old, new_value=new
            )
        )


def create_user(db: Database, name: str, password: str, role: str, *, actor: str = "cli") -> None:
    """A new account; AccountError when the name is taken or invalid, the role unknown, the password weak."""
    _check_name(name)
    if role not in ROLES:
        raise AccountError(f"{role!r} is not a role ({', '.join(ROLES)})")
    _check_password(password)
    with db.session() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise AccountError(f"there is already a user {name!r}")
        session.add(
            User(
                name=name,
                role=role,
                password_hash=_hasher.hash(password),
                failed_logins=0,
                created_at=utcnow(),
            )
        )
    audit(db, actor, "user.create", name, None, role)


def list_users(db: Database, *, now: datetime | None = None) -> list[dict[str, object]]:
    """Every account: name, role, failed logins in a row, locked until, created, last login, and
    whether it is locked now or disabled."""
    now = now or utcnow()
    with db.session() as session:
        return [
            {
                "name": u.name,
                "role": u.role,
                "failed_logins": u.failed_logins,
                "locked_until": u.locked_until,
                "created_at": u.created_at,
                "last_login": u.last_login,
                "locked": u.locked_until is not None and u.locked_until > now,
                "disabled": u.disabled_at is not None,
            }
            for u in session.scalars(select(User).order_by(User.name))
        ]


def _keep_an_admin(session: Session, user: User, what: str) -> None:
    """AccountError when `user` is the last admin able to log in (it would leave nobody to admin)."""
    if user.role != "admin":
        return
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.role == "admin",
            User.id != user.id,
            User.disabled_at.is_(None),
        )
    )
    if not others:
        raise AccountError(f"{user.name!r} is the last admin: {what} would leave nobody to administer")


def set_role(db: Database, name: str, role: str, *, actor: str = "cli") -> None:
    """Make `name` an admin or a viewer (at once: every request reads the role); never the last admin."""
    if role not in ROLES:
        raise AccountError(f"{role!r} is not a role ({', '.join(ROLES)})")
    with db.session() as session:
        user = _user(session, name)
        old = user.role
        if old == role:
            return
        _keep_an_admin(session, user, "making it a viewer")
        user.role = role
    audit(db, actor, "user.role", name, old, role)


def disable_user(db: Database, name: str, *, actor: str = "cli") -> None:
    """No more logins for `name` (until enabled); its sessions end and its API tokens are revoked."""
    now = utcnow()
    with db.session() as session:
        user = _user(session, name)
        _keep_an_admin(session, user, "disabling it")
        user.disabled_at = user.disabled_at or now
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
        session.execute(
            update(ApiToken)
            .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    audit(db, actor, "user.disable", name)


def audit_entries(db: Database, *, before: int | None = None, limit: int = 50) -> list[dict[str, object]]:
    """The audit log, newest first: `limit` rows with an id below `before` (keyset pages)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    with db.session() as session:
        return [
            {
                "id": a.id,
                "time": a.time.isoformat(),
                "actor": a.actor,
                "action": a.action,
                "target": a.target,
                "old": a.old_value,
                "new": a.new_value,
            }
            for a in session.scalars(query)
        ]


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"there is no user {name!r}")
    return user


def delete_user(db: Database, name: str, *, actor: str = "cli") -> None:
    """Remove an account with its tokens and sessions."""
    with db.session() as session:
        session.delete(_user(session, name))  # root's CLI may: `create-user` makes another admin
    audit(db, actor, "user.delete", name)


def set_password(db: Database, name: str, password: str, *, actor: str = "cli") -> None:
    """A new password for `name`; its browser sessions end (its API tokens stay: revoke them apart)."""
    _check_password(password)
    with db.session() as session:
        user = _user(session, name)
        user.password_hash = _hasher.hash(password)
        user.failed_logins, user.locked_until = 0, None
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit(db, actor, "user.password", name)


def enable_user(db: Database, name: str, *, actor: str = "cli") -> None:
    """Let a disabled account log in again (its old sessions and tokens stay ended)."""
    with db.session() as session:
        user = _user(session, name)
        if user.disabled_at is None:
            return
        user.disabled_at, user.failed_logins = None, 0
    audit(db, actor, "user.enable", name)


def unlock_user(db: Database, name: str, *, actor: str = "cli") -> None:
    """Clear an account's lockout and failure count."""
    with db.session() as session:
        user = _user(session, name)
        user.failed_logins, user.locked_until = 0, None
    audit(db, actor, "user.unlock", name)


def authenticate(
    db: Database, name: str, password: str, *, failures: int, lock_seconds: float, now: datetime | None = None
) -> Identity:
    """The identity of `name` when `password` is right and the account is not locked.

    Each wrong password counts; the `failures`-th in a row locks the account for `lock_seconds`.
    While it is locked even the right password is refused (and not counted). LoginRefused says
    "locked" only for an existing locked account; a wrong name and a wrong password read alike.
    """
    now = now or utcnow()
    password = password[: MAX_PASSWORD + 1]
    with db.session() as session:
        user = session.scalar(select(User).where(User.name == name[:64])) if NAME.fullmatch(name) else None
        if user is None:
            with contextlib.suppress(VerificationError):
                _hasher.verify(_DUMMY_HASH, password)
            raise LoginRefused("wrong user name or password")
        if user.disabled_at is not None:
            raise LoginRefused("this account is disabled")
        if user.locked_until is not None and user.locked_until > now:
            raise LoginRefused(f"this account is locked until {user.locked_until:%Y-%m-%d %H:%M:%S} UTC")
        try:
            _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            user.failed_logins += 1
            if user.failed_logins >= failures:
                user.locked_until = now + timedelta(seconds=lock_seconds)
                user.failed_logins = 0
            session.commit()
            raise LoginRefused("wrong user name or password") from None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        user.failed_logins, user.locked_until, user.last_login = 0, None, now
        return Identity(user.id, user.name, user.role)


# --- API tokens ----------------------------------------------------------------------------------


def create_token(
    db: Database, user: str, name: str, *, ttl: timedelta | None = None, actor: str = "cli"
) -> str:
    """A new API token for `user`, returned once (only its hash is kept)."""
    _check_name(name)
    token = "dp_" + secrets.token_urlsafe(32)
    now = utcnow()
    with db.session() as session:
        owner = _user(session, user)
        # Expired tokens (mostly the OAuth2 endpoint's, which last a session) are of no use: gone.
        session.execute(delete(ApiToken).where(ApiToken.expires_at <= now))
        session.add(
            ApiToken(
                user_id=owner.id,
                name=name,
                token_hash=_digest(token),
                created_at=now,
                expires_at=now + ttl if ttl else None,
            )
        )
    audit(db, actor, "token.create", f"{user}/{name}")
    return token


def list_tokens(db: Database, user: str | None = None) -> list[dict[str, object]]:
    """API tokens (never their secret): id, user, name, created, expires, last used, revoked."""
    with db.session() as session:
        query = select(ApiToken).order_by(ApiToken.id)
        if user is not None:
            query = query.where(ApiToken.user_id == _user(session, user).id)
        return [
            {
                "id": t.id,
                "user": t.user.name,
                "name": t.name,
                "created_at": t.created_at,
                "expires_at": t.expires_at,
                "last_used": t.last_used,
                "revoked_at": t.revoked_at,
            }
            for t in session.scalars(query).unique()
        ]


def revoke_token(db: Database, token_id: int, *, actor: str = "cli") -> None:
    """Revoke a token by its id; AccountError when there is none."""
    with db.session() as session:
        token = session.get(ApiToken, token_id)
        if token is None:
            raise AccountError(f"there is no API token {token_id}")
        token.revoked_at = token.revoked_at or utcnow()
        label = f"{token.user.name}/{token.name}"
    audit(db, actor, "token.revoke", label)


def token_identity(db: Database, token: str, *, now: datetime | None = None) -> Identity | None:
    """Whose `token` is, or None when it is unknown, revoked or expired."""
    now = now or utcnow()
    with db.session() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _digest(token[:200])))
        if row is None or row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
            return None
        if row.user.disabled_at is not None:  # a token made for it since it was disabled
            return None
        if row.last_used is None or now - row.last_used > timedelta(minutes=1):
            row.last_used = now  # at most once a minute: a busy script does not write on every call
        return Identity(row.user.id, row.user.name, row.user.role)


# --- browser sessions ----------------------------------------------------------------------------


def start_session(db: Database, identity: Identity, *, hours: float) -> tuple[str, Identity]:
    """A new browser session: (the cookie's value, the identity with its CSRF token)."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with db.session() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))
        session.add(
            WebSession(
                token_hash=_digest(cookie),
                user_id=identity.user_id,
                csrf_token=csrf,
                created_at=now,
                expires_at=now + timedelta(hours=hours),
            )
        )
    return cookie, Identity(identity.user_id, identity.name, identity.role, csrf)


def session_identity(db: Database, cookie: str, *, now: datetime | None = None) -> Identity | None:
    """Whose session the cookie is, with its CSRF token; None when unknown or expired."""
    now = now or utcnow()
    with db.session() as session:
        row = session.scalar(select(WebSession).where(WebSession.token_hash == _digest(cookie[:200])))
        if row is None or row.expires_at <= now or row.user.disabled_at is not None:
            return None
        return Identity(row.user.id, row.user.name, row.user.role, row.csrf_token)


def end_session(db: Database, cookie: str) -> None:
    """Log out: the session is deleted, its cookie worthless from now on."""
    with db.session() as session:
        session.execute(delete(WebSession).where(WebSession.token_hash == _digest(cookie[:200])))
