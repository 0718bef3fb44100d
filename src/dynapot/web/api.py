"""The JSON API under /api/v1: what the pages show, for scripts (OpenAPI at /openapi.json).

`POST /api/v1/token` takes the OAuth2 password form (username, password) and returns a bearer
token that lasts `web.session_hours`; a long-lived token comes from `dynapot admin
create-token`. Every other endpoint needs a token (or the browser's session and, to change
anything, its CSRF header) and answers 401 without one: `security.Guard` sees to it before any
route or body is looked at. Changing settings needs the admin role (403 otherwise).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel

from dynapot.daemon.settings_store import EDITABLE, RESTART, SettingsRefused, current_values
from dynapot.daemon.status import gather_status
from dynapot.web import queries, report_queries
from dynapot.web.accounts import Identity, LoginRefused, authenticate, create_token
from dynapot.web.api_plan import router as plan_router
from dynapot.web.api_reports import router as reports_router
from dynapot.web.context import WebContext
from dynapot.web.settings_change import change_settings

__all__ = ["router"]

# Documents the bearer scheme in the OpenAPI schema; the Guard has already checked the token.
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/token", auto_error=False)

router = APIRouter(prefix="/api/v1", tags=["api"])


def context(request: Request) -> WebContext:
    return request.app.state.web


def identity(request: Request, _token: Annotated[str | None, Depends(_bearer)]) -> Identity:
    """The caller, resolved by the Guard (which answered 401 already when there is none)."""
    who = request.state.identity
    if who is None:  # only for a public path, which no route here is but /token
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return who


def admin(who: Annotated[Identity, Depends(identity)]) -> Identity:
    if not who.is_admin:
        raise HTTPException(403, "only an admin may change this")
    return who


Ctx = Annotated[WebContext, Depends(context)]
Who = Annotated[Identity, Depends(identity)]
Admin = Annotated[Identity, Depends(admin)]


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 scheme's name)
    expires_in: int


class SettingsOut(BaseModel):
    values: dict[str, Any]
    restart_needed_for: list[str]
    writable: bool


class SettingsChanged(BaseModel):
    changed: list[dict[str, str]]


@router.post("/token", response_model=TokenOut, responses={401: {"description": "refused"}, 429: {}})
def token(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()], web: Ctx) -> Any:
    """A bearer token for the OAuth2 password form's username and password."""
    client = request.client.host if request.client else "?"
    if not web.limiter.allow(client):
        raise HTTPException(429, "too many login attempts; wait a minute")
    try:
        who = authenticate(
            web.db,
            form.username,
            form.password,
            failures=web.settings.web.lockout_failures,
            lock_seconds=web.settings.web.lockout_seconds,
        )
    except LoginRefused as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    hours = web.settings.web.session_hours
    secret = create_token(web.db, who.name, "oauth2", ttl=timedelta(hours=hours), actor=who.name)
    return TokenOut(access_token=secret, expires_in=int(hours * 3600))


@router.get("/hosts")
def hosts(web: Ctx, _who: Who) -> list[dict[str, Any]]:
    """The inventory: every host, real and virtual, with each tool's OS answer and its ports."""
    return queries.hosts_with_evidence(web.db)


@router.get("/status")
def status(web: Ctx, _who: Who) -> dict[str, Any]:
    """Counts, OS mix, findings by risk, and the daemon's and sensor's health files."""
    full = gather_status(web.current_settings(), web.db)
    return {
        **queries.dashboard_counts(web.db),
        "os_mix": queries.os_mix(web.db),
        "free_addresses": full["free_addresses"],
        "events": full["events"],
        "daemon": full["daemon"],
        "sensor": full["sensor"],
    }


@router.get("/events")
def events(
    web: Ctx,
    _who: Who,
    before: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="ids below this, newest first")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="ids above this, oldest first")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """One keyset page of the honeypot log; `next` continues it (pass it as before, or after)."""
    if before is not None and after is not None:
        raise HTTPException(422, "give before or after, not both")
    rows = queries.event_rows(web.db, before=before, after=after, limit=limit)
    following = rows[-1]["id"] if len(rows) == limit else None
    return {"events": rows, "next": following}


@router.get("/findings")
def findings(
    web: Ctx,
    _who: Who,
    risk: Literal["low", "medium", "high", "critical"] | None = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_PAGE)] = 50,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    after: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="the last id of the page before")
    ] = None,
) -> list[dict[str, Any]]:
    """The most recent findings (last seen, newest first), optionally of one risk and kind; the next
    page is the one `after` the last id of this one (keyset)."""
    return report_queries.findings_page(web.db, risk=risk, kind=kind, after=after, limit=limit).rows


@router.get("/settings", response_model=SettingsOut)
def get_settings(web: Ctx, _who: Who) -> Any:
    """The settings the interface edits (alert URLs masked)."""
    return SettingsOut(
        values=current_values(web.current_settings()),
        restart_needed_for=sorted(RESTART),
        writable=web.settings_path is not None,
    )


@router.patch(
    "/settings",
    response_model=SettingsChanged,
    responses={403: {"description": "not an admin"}, 409: {}, 422: {"description": "refused"}},
)
def patch_settings(
    web: Ctx,
    who: Admin,
    changes: Annotated[
        dict[str, str | int | float | bool | list[str] | None],
        Body(description="dotted setting -> new value; " + ", ".join(f.dotted for f in EDITABLE)),
    ],
) -> Any:
    """Change settings (admin): validated as a whole, written to the settings file, audited."""
    if web.settings_path is None:
        raise HTTPException(409, "dynapot web was started without --config: no settings file to change")
    submitted = {k: ("" if v is None else v) for k, v in changes.items()}
    try:
        made = change_settings(web, submitted, who.name)
    except SettingsRefused as exc:
        return JSONResponse({"detail": "refused", "errors": exc.errors}, status_code=422)
    return SettingsChanged(changed=[{"setting": c.dotted, "old": c.old, "new": c.new} for c in made])


router.include_router(reports_router)  # reports, findings/{id}, sessions: web/api_reports.py
router.include_router(plan_router)  # /plan, /plan/apply, /virtual-hosts
