"""The API of the reports, findings and sessions pages (under /api/v1, included by `api`).

GET /api/v1/reports (JSON or CSV: `analysis.report`'s, as `dynapot report` writes them),
/api/v1/findings/{id} (one finding with its events), /api/v1/sessions (the sessions of a
period) and /api/v1/sessions/{id} (a replay page). All read only: any logged-in role may call
them; the Guard answers 401 without credentials. A bad period is a 422 naming each field.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from dynapot.web import report_queries
from dynapot.web.context import WebContext
from dynapot.web.pages_reports import MAX_ID, export_response
from dynapot.web.period import PeriodRefused, parse_period

__all__ = ["router"]

router = APIRouter(tags=["reports"])  # included by `api.router`, under its /api/v1


def _context(request: Request) -> WebContext:
    return request.app.state.web


def _caller(request: Request) -> Any:
    """The Guard has resolved the caller (or answered 401 already)."""
    who = request.state.identity
    if who is None:
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return who


Ctx = Annotated[WebContext, Depends(_context)]
Caller = Annotated[Any, Depends(_caller)]
Preset = Annotated[Literal["1h", "24h", "7d", "30d"] | None, Query(description="a period back from now")]
When = Annotated[
    str | None,
    Query(
        max_length=64,
        description="ISO 8601 time (UTC unless it names its zone) or a duration back: 90m, 24h, 7d",
    ),
]
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
REFUSED = {422: {"description": "a bad period: {detail, errors: {field: why}}"}}


def _refused(errors: dict[str, str]) -> JSONResponse:
    return JSONResponse({"detail": "refused", "errors": errors}, status_code=422)


@router.get(
    "/reports",
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}}, "description": "the report"},
        **REFUSED,
    },
)
def reports(
    web: Ctx,
    _who: Caller,
    preset: Preset = None,
    since: When = None,
    until: When = None,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """The report of a period (default: the last day) as `dynapot report` writes it, JSON or CSV."""
    try:
        period = parse_period(preset, since, until)
    except PeriodRefused as exc:
        return _refused(exc.errors)
    return export_response(web, period, format)


@router.get("/findings/{finding_id}", responses={404: {"description": "no such finding"}})
def finding(web: Ctx, _who: Caller, finding_id: Id) -> dict[str, Any]:
    """One finding with its details and the events of its stored sample."""
    found = report_queries.finding_detail(web.db, finding_id)
    if found is None:
        raise HTTPException(404, "no such finding")
    return found


@router.get("/sessions", responses=REFUSED)
def sessions(
    web: Ctx,
    _who: Caller,
    preset: Preset = None,
    since: When = None,
    until: When = None,
    honeypot: Annotated[str | None, Query(max_length=45, description="one honeypot's address")] = None,
) -> Any:
    """The high-interaction sessions of a period (default: the last day), newest first."""
    try:
        period = parse_period(preset, since, until)
    except PeriodRefused as exc:
        return _refused(exc.errors)
    if honeypot:
        try:
            honeypot = str(ipaddress.ip_address(honeypot.strip()))
        except ValueError:
            return _refused({"honeypot": "not an IP address"})
    rows, total = report_queries.session_rows(web.db, period, honeypot or None)
    return {"sessions": rows, "total": total}


@router.get("/sessions/{session_id}", responses={404: {"description": "no such session"}})
def replay(
    web: Ctx, _who: Caller, session_id: Id, page: Annotated[int, Query(ge=0, le=1_000_000)] = 0
) -> dict[str, Any]:
    """One page of a session's replay: typed and shown text in order, with the records lost."""
    found = report_queries.replay_page(web.db, session_id, page)
    if found is None:
        raise HTTPException(404, "no such session")
    return found
