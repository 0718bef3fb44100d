"""The user management and audit log pages (admins only).

/users lists the accounts (role, last login, locked or disabled) and the API tokens, and takes
one action per form: create a user (its password generated and shown once), change a role,
unlock, disable, enable, reset a password (generated, shown once), revoke a token. Every action is a
POST carrying the session's CSRF token, is done by `accounts` (which refuses to leave no admin
able to log in) and is written to the audit log. /audit pages through that log, newest first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from dynapot.web import accounts
from dynapot.web.accounts import AccountError, Identity
from dynapot.web.context import WebContext
from dynapot.web.security import check_csrf

__all__ = ["AUDIT_PAGE", "register"]

AUDIT_PAGE = 50
ACTIONS = ("create", "role", "unlock", "disable", "enable", "password", "revoke")
MAX_ID = 2**62  # bigger ids in the query are nobody's, and no database error either

Render = Callable[..., HTMLResponse]


def _admin_only(request: Request) -> PlainTextResponse | None:
    who: Identity = request.state.identity
    return None if who.is_admin else PlainTextResponse("403: only an admin may manage users", status_code=403)


def _perform(web: WebContext, actor: str, form: dict[str, str]) -> tuple[str, str | None]:
    """Do one action of the users page: (what to tell the admin, a password to show once or None)."""
    action, name = form.get("action", ""), form.get("name", "")[:64]
    db = web.db
    if action == "create":
        password = accounts.generate_password()
        accounts.create_user(db, name, password, form.get("role", ""), actor=actor)
        return f"created {name} ({form.get('role')}); give them this password, shown only now:", password
    if action == "role":
        accounts.set_role(db, name, form.get("role", ""), actor=actor)
        return f"{name} is now {form.get('role')}", None
    if action == "unlock":
        accounts.unlock_user(db, name, actor=actor)
        return f"{name} is unlocked", None
    if action == "disable":
        accounts.disable_user(db, name, actor=actor)
        return f"{name} is disabled: its sessions ended, its API tokens revoked", None
    if action == "enable":
        accounts.enable_user(db, name, actor=actor)
        return f"{name} is enabled: it may log in again", None
    if action == "password":
        password = accounts.generate_password()
        accounts.set_password(db, name, password, actor=actor)
        return f"new password for {name} (its sessions ended), shown only now:", password
    if action == "revoke":
        token = form.get("token", "")
        if not token.isdigit() or int(token) > MAX_ID:
            raise AccountError("no such API token")
        accounts.revoke_token(db, int(token), actor=actor)
        return f"API token {token} revoked", None
    raise AccountError(f"unknown action (one of {', '.join(ACTIONS)})")


def register(app: FastAPI, render: Render, web: WebContext) -> None:
    """Add /users and /audit to the application."""

    def users_page(
        request: Request, status: int = 200, notice: str = "", error: str = "", password: str = ""
    ) -> Any:
        return render(
            request,
            "users",
            status,
            users=accounts.list_users(web.db),
            tokens=accounts.list_tokens(web.db),
            roles=accounts.ROLES,
            notice=notice,
            error=error,
            password=password,
        )

    @app.get("/users", include_in_schema=False)
    def users_view(request: Request) -> Any:
        return _admin_only(request) or users_page(request)

    @app.post("/users", include_in_schema=False)
    async def users_change(request: Request) -> Any:
        who: Identity = request.state.identity
        raw = await request.form(max_files=0, max_fields=10)
        if not check_csrf(who, str(raw.get("csrf_token", ""))):
            return PlainTextResponse("403: missing or wrong CSRF token", status_code=403)
        refused = _admin_only(request)
        if refused is not None:
            return refused
        form = {key: str(value)[:200] for key, value in raw.items()}
        try:
            notice, password = await run_in_threadpool(_perform, web, who.name, form)
        except AccountError as exc:
            return await run_in_threadpool(users_page, request, 422, "", str(exc))
        return await run_in_threadpool(users_page, request, 200, notice, "", password or "")

    @app.get("/audit", include_in_schema=False)
    def audit_view(request: Request) -> Any:
        refused = _admin_only(request)
        if refused is not None:
            return refused
        given = request.query_params.get("before", "")
        before = int(given) if given.isdigit() and int(given) <= MAX_ID else None
        rows = accounts.audit_entries(web.db, before=before, limit=AUDIT_PAGE + 1)
        more = len(rows) > AUDIT_PAGE
        rows = rows[:AUDIT_PAGE]
        return render(
            request,
            "audit",
            entries=rows,
            next_before=rows[-1]["id"] if more and rows else None,
            first=before is None,
        )
