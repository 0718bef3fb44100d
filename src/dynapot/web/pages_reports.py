"""The reports, findings and sessions pages: `register(app, render, web)` adds their routes.

- /reports: the report of a period (a preset, or from/to; a bad value is shown beside its
  field) with charts, and /reports/export downloads it as CSV, JSON or HTML
  (`analysis.report`, the CLI's report: CSV cells a spreadsheet would run are neutralised
  there, the HTML escapes everything).
- /findings: filtered by risk and kind, keyset-paged; /findings/ID: one with its events.
- /sessions: the high-interaction sessions of a period; /sessions/ID: a replay of what was typed
  and shown, with the records lost, one bounded page at a time.

Every route only reads, so a viewer may open all of them; the Guard has required a login.
Query parameters are text from the browser: they are checked here, never passed on raw.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from dynapot.analysis.report import build_report
from dynapot.analysis.report import render as render_report
from dynapot.config import RISKS
from dynapot.web import report_queries
from dynapot.web.charts import simple_bars
from dynapot.web.columns import columns
from dynapot.web.context import WebContext
from dynapot.web.period import PRESET_LABELS, Period, PeriodRefused, parse_period

__all__ = ["EXPORTS", "export_response", "parse_id", "register"]

#: Export format -> media type.
EXPORTS = {"csv": "text/csv; charset=utf-8", "json": "application/json", "html": "text/html; charset=utf-8"}
MAX_ID = 2**63 - 1


def parse_id(text: str | None) -> int | None:
    """A row id from the query string or path (a positive 64-bit integer), or None."""
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def _period(request: Request) -> tuple[Period | None, dict[str, str], dict[str, str]]:
    """(the period or None, errors by field, the fields as submitted) from the query string."""
    query = request.query_params
    submitted = {name: str(query.get(name, ""))[:100] for name in ("preset", "since", "until")}
    try:
        return parse_period(submitted["preset"], submitted["since"], submitted["until"]), {}, submitted
    except PeriodRefused as exc:
        return None, exc.errors, submitted


def export_response(web: WebContext, period: Period, fmt: str) -> Response:
    """The report of `period` as a download in `fmt` (one of EXPORTS)."""
    data = build_report(web.db, period.since, period.until)
    name = f"dynapot-report-{period.since:%Y%m%dT%H%M%S}-{period.until:%Y%m%dT%H%M%S}.{fmt}"
    return Response(
        render_report(data, fmt),
        media_type=EXPORTS[fmt],
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def register(app: FastAPI, render: Any, web: WebContext) -> None:
    """Add the reports, findings and sessions pages to `app` (`render` draws a template)."""

    def period_form(
        period: Period | None, errors: dict[str, str], submitted: dict[str, str]
    ) -> dict[str, Any]:
        shown = dict(submitted)
        if period is not None:  # the absolute times of a preset, so that from/to can be adjusted
            shown["since"], shown["until"] = period.query()["since"], period.query()["until"]
        return {"presets": PRESET_LABELS, "errors": errors, "form": shown, "period": period}

    @app.get("/reports", include_in_schema=False)
    def reports(request: Request) -> Any:
        period, errors, submitted = _period(request)
        form = period_form(period, errors, submitted)
        if period is None:
            return render(request, "reports", 422, view=None, **form)
        view = report_queries.report_view(web.db, period)
        timeline = view.data.sections["timeline"]
        return render(
            request,
            "reports",
            view=view,
            data=view.data.as_dict(),
            timeline=columns([((b["start"] or "")[:16].replace("T", " "), b["events"]) for b in timeline]),
            bucket=_bucket_name(view.data.bucket_seconds),
            kinds=simple_bars(list(view.by_kind.items())[:12]),
            risks=simple_bars(list(view.findings_by_risk.items())),
            exports={
                fmt: "/reports/export?" + urlencode({**period.query(), "format": fmt}) for fmt in EXPORTS
            },
            **form,
        )

    @app.get("/reports/export", include_in_schema=False)
    def reports_export(request: Request) -> Any:
        fmt = request.query_params.get("format", "csv")
        if fmt not in EXPORTS:
            return PlainTextResponse(
                f"422: unknown format; choose one of {', '.join(EXPORTS)}", status_code=422
            )
        period, errors, _ = _period(request)
        if period is None:
            return PlainTextResponse(
                "422: " + "; ".join(f"{k}: {v}" for k, v in errors.items()), status_code=422
            )
        return export_response(web, period, fmt)

    @app.get("/findings", include_in_schema=False)
    def findings(request: Request) -> Any:
        query = request.query_params
        risk = query.get("risk") or None
        kind = (query.get("kind") or "")[:32] or None
        after_text = query.get("after")
        errors: dict[str, str] = {}
        if risk is not None and risk not in RISKS:
            errors["risk"] = f"choose one of {', '.join(RISKS)}"
        after = parse_id(after_text) if after_text else None
        if after_text and after is None:
            errors["after"] = "not a finding id"
        kinds = report_queries.finding_kinds(web.db)
        if kind is not None and kind not in kinds:
            kinds = [*kinds, kind]  # shown as chosen; it simply matches nothing
        filters = {"risk": risk or "", "kind": kind or ""}
        if errors:
            return render(
                request,
                "findings",
                422,
                rows=[],
                next_url=None,
                first_url=None,
                errors=errors,
                kinds=kinds,
                risks=RISKS,
                filters=filters,
            )
        page = report_queries.findings_page(web.db, risk=risk, kind=kind, after=after)
        following = None
        if page.next is not None:
            following = "/findings?" + urlencode(
                {k: v for k, v in {**filters, "after": page.next}.items() if v}
            )
        return render(
            request,
            "findings",
            rows=page.rows,
            next_url=following,
            first_url="/findings?" + urlencode({k: v for k, v in filters.items() if v}) if after else None,
            errors={},
            kinds=kinds,
            risks=RISKS,
            filters=filters,
        )

    @app.get("/findings/{finding_id}", include_in_schema=False)
    def finding(request: Request, finding_id: str) -> Any:
        number = parse_id(finding_id)
        found = report_queries.finding_detail(web.db, number) if number is not None else None
        if found is None:
            return PlainTextResponse("404: no such finding", status_code=404)
        return render(request, "finding", finding=found)

    @app.get("/sessions", include_in_schema=False)
    def sessions(request: Request) -> Any:
        period, errors, submitted = _period(request)
        honeypot = (request.query_params.get("honeypot") or "").strip()[:45]
        if honeypot:
            try:
                honeypot = str(ipaddress.ip_address(honeypot))
            except ValueError:
                errors = {**errors, "honeypot": "not an IP address"}
        form = period_form(period, errors, submitted)
        form["form"]["honeypot"] = honeypot
        if period is None or errors:
            return render(request, "sessions", 422, rows=[], total=0, **form)
        rows, total = report_queries.session_rows(web.db, period, honeypot or None)
        return render(request, "sessions", rows=rows, total=total, **form)

    @app.get("/sessions/{session_id}", include_in_schema=False)
    def replay(request: Request, session_id: str) -> Any:
        number = parse_id(session_id)
        page_text = request.query_params.get("page", "0")
        page = int(page_text) if page_text.isascii() and page_text.isdigit() and len(page_text) < 7 else 0
        found = report_queries.replay_page(web.db, number, page) if number is not None else None
        if found is None:
            return PlainTextResponse("404: no such session", status_code=404)
        return render(request, "replay", replay=found)


def _bucket_name(seconds: int) -> str:
    for size, name in ((7 * 86_400, "week"), (86_400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            count = seconds // size
            return name if count == 1 else f"{count} {name}s"
    return f"{seconds} s"
