"""The FastAPI application: server-rendered pages, the live feed, the API, all behind `Guard`.

`create_app(context)` builds it; nothing is made at import. Pages are Jinja2 templates with
autoescape on (no `|safe` anywhere: host names, banners and attackers' strings are text);
static files (our CSS and JS, no CDN) come from the package. Forms that change anything
carry the session's CSRF token (`security.check_csrf`); the login form a double-submit one.
A page that fails shows a one-line message, never a stack trace.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dynapot.daemon.settings_store import (
    EDITABLE,
    RESTART,
    SettingsRefused,
    current_values,
    mask_url,
)
from dynapot.web import pages_plan, pages_reports, queries
from dynapot.web.accounts import Identity, LoginRefused, audit, authenticate, end_session, start_session
from dynapot.web.api import router as api_router
from dynapot.web.charts import paired_bars, simple_bars
from dynapot.web.context import WebContext
from dynapot.web.live import next_batch, sse_message
from dynapot.web.security import Guard, check_csrf
from dynapot.web.settings_change import change_settings
from dynapot.web.users import register as register_users

__all__ = ["create_app"]

HERE = Path(__file__).parent
LOGIN_CSRF = "dynapot_login"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
#: How long one live-feed connection lasts; the browser's EventSource then reconnects where it was.
STREAM_SECONDS = 300.0


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    for name in env.list_templates():  # compiled now: a syntax error stops the start, and the
        env.get_template(name)  # compiler's codecs are not loaded after root is dropped
    return Jinja2Templates(env=env)


def _when(iso: str | None) -> str:
    """An ISO time as the pages show it: 2026-12-07 02:47:20 (UTC, to the second)."""
    return "" if not iso else iso[:19].replace("T", " ")


def _safe_next(target: str | None) -> str:
    """Where to go after login: a path of this site only (never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def create_app(web: WebContext, *, stream_seconds: float = STREAM_SECONDS) -> Any:
    """The ASGI application: FastAPI wrapped in the Guard (headers, identity, deny by default)."""
    app = FastAPI(
        title="dynapot",
        version="1",
        docs_url=None,  # Swagger UI loads from a CDN: none here (admin networks are often offline)
        redoc_url=None,
        openapi_url=None,  # served below, behind authentication
    )
    app.state.web = web
    templates = _templates()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api_router)

    def render(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        who: Identity | None = request.state.identity
        context = {"who": who, "csrf_token": who.csrf_token if who else "", "page": name, **values}
        return templates.TemplateResponse(request, f"{name}.html", context, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}", status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def failure(request: Request, exc: Exception) -> Any:
        return PlainTextResponse("500: internal error (see the server's log)", status_code=500)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi() -> Any:
        return app.openapi()

    @app.get("/health", include_in_schema=False)
    def health() -> Any:
        return {"status": "ok"}

    pages_plan.register(app, render, web)

    # --- login and logout ---------------------------------------------------------------------

    def login_page(request: Request, error: str = "", status: int = 200) -> HTMLResponse:
        # One token per browser while it has one: a second tab, or the browser's own request for
        # /favicon.ico that lands here, must not invalidate the form already shown.
        token = request.cookies.get(LOGIN_CSRF, "")
        if not _TOKEN.fullmatch(token):
            token = secrets.token_urlsafe(32)
        response = render(
            request,
            "login",
            status,
            error=error,
            login_csrf=token,
            next=_safe_next(request.query_params.get("next")),
        )
        response.set_cookie(
            LOGIN_CSRF, token, max_age=1800, httponly=True, secure=web.tls, samesite="strict", path="/login"
        )
        return response

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request) -> Any:
        if request.state.identity is not None:
            return RedirectResponse("/", status_code=303)
        return login_page(request)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Any:
        form = await request.form(max_files=0, max_fields=10)
        cookie, field = request.cookies.get(LOGIN_CSRF), str(form.get("login_csrf", ""))
        if not cookie or not secrets.compare_digest(cookie.encode(), field.encode()):
            return login_page(request, "the form expired; please log in again", 403)
        client = request.client.host if request.client else "?"
        if not web.limiter.allow(client):
            return login_page(request, "too many login attempts from your address; wait a minute", 429)
        settings = web.settings.web
        try:
            who = await run_in_threadpool(
                authenticate,
                web.db,
                str(form.get("username", ""))[:200],
                str(form.get("password", "")),
                failures=settings.lockout_failures,
                lock_seconds=settings.lockout_seconds,
            )
        except LoginRefused as exc:
            return login_page(request, str(exc), 401)
        cookie_value, _ = await run_in_threadpool(start_session, web.db, who, hours=settings.session_hours)
        await run_in_threadpool(audit, web.db, who.name, "login", "web", None, client)
        response = RedirectResponse(_safe_next(str(form.get("next", "/"))), status_code=303)
        response.set_cookie(
            web.cookie_name,
            cookie_value,
            max_age=int(settings.session_hours * 3600),
            httponly=True,
            secure=web.tls,
            samesite="strict",
            path="/",
        )
        response.delete_cookie(LOGIN_CSRF, path="/login")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Any:
        form = await request.form(max_files=0, max_fields=10)
        if not check_csrf(request.state.identity, str(form.get("csrf_token", ""))):
            return PlainTextResponse("403: missing or wrong CSRF token", status_code=403)
        cookie = request.cookies.get(web.cookie_name)
        if cookie:
            await run_in_threadpool(end_session, web.db, cookie)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(web.cookie_name, path="/", secure=web.tls, httponly=True, samesite="strict")
        return response

    # --- pages --------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def dashboard(request: Request) -> Any:
        counts = queries.dashboard_counts(web.db)
        mix = queries.os_mix(web.db)
        return render(
            request,
            "dashboard",
            counts=counts,
            os_chart=paired_bars([(row["os"], row["real"], row["virtual"]) for row in mix]),
            risk_chart=simple_bars(list(counts["findings_by_risk"].items())),
            alerts=queries.recent_alerts(web.db),
            events=queries.event_rows(web.db, limit=20),
            cursor=queries.latest_event_id(web.db),
        )

    @app.get("/inventory", include_in_schema=False)
    def inventory(request: Request) -> Any:
        hosts = queries.hosts_with_evidence(web.db, limit=queries.PAGE_HOSTS)
        return render(request, "inventory", hosts=hosts, total=queries.host_count(web.db))

    def settings_page(
        request: Request,
        status: int = 200,
        errors: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
        notice: str = "",
        results: list[tuple[str, str]] | None = None,
    ) -> HTMLResponse:
        current = current_values(web.current_settings())
        return render(
            request,
            "settings",
            status,
            fields=EDITABLE,
            values={**current, **(values or {})},
            masked_urls=current["alerts.urls"],
            errors=errors or {},
            restart=RESTART,
            writable=web.settings_path is not None,
            notice=notice,
            results=results or [],
        )

    @app.get("/settings", include_in_schema=False)
    def settings_view(request: Request) -> Any:
        saved = request.query_params.get("saved")
        notice = f"saved: {saved} setting(s) changed" if saved and saved.isdigit() else ""
        return settings_page(request, notice=notice)

    @app.post("/settings", include_in_schema=False)
    async def settings_save(request: Request) -> Any:
        who: Identity = request.state.identity
        form = await request.form(max_files=0, max_fields=100)
        if not check_csrf(who, str(form.get("csrf_token", ""))):
            return PlainTextResponse("403: missing or wrong CSRF token", status_code=403)
        if not who.is_admin:
            return PlainTextResponse("403: only an admin may change settings", status_code=403)
        if web.settings_path is None:
            return settings_page(request, 409, notice="started without --config: there is no settings file")
        submitted: dict[str, Any] = {}
        for field in EDITABLE:
            if field.kind == "bool":
                submitted[field.dotted] = field.dotted in form
            elif field.kind == "urls":
                text = str(form.get(field.dotted, "")).strip()
                if text or "alerts.clear" in form:
                    submitted[field.dotted] = text
            elif field.dotted in form:
                submitted[field.dotted] = str(form[field.dotted])[:10_000]
        try:
            made = await run_in_threadpool(change_settings, web, submitted, who.name)
        except SettingsRefused as exc:
            shown = {k: v for k, v in submitted.items() if k != "alerts.urls"}
            return settings_page(request, 422, errors=exc.errors, values=shown)
        return RedirectResponse("/settings?" + urlencode({"saved": len(made)}), status_code=303)

    @app.post("/settings/test-alert", include_in_schema=False)
    async def test_alert(request: Request) -> Any:
        who: Identity = request.state.identity
        form = await request.form(max_files=0, max_fields=10)
        if not check_csrf(who, str(form.get("csrf_token", ""))):
            return PlainTextResponse("403: missing or wrong CSRF token", status_code=403)
        if not who.is_admin:
            return PlainTextResponse("403: only an admin may send a test alert", status_code=403)
        results = await run_in_threadpool(_send_test_alerts, web, who.name)
        notice = "" if results else "no alert URLs are set"
        return settings_page(request, notice=notice, results=results)

    pages_reports.register(app, render, web)  # reports, findings, sessions
    register_users(app, render, web)  # users and the audit log (admins)

    @app.get("/events/stream", include_in_schema=False)
    async def event_stream(request: Request) -> Any:
        start = request.headers.get("last-event-id") or request.query_params.get("after") or ""
        cursor = int(start) if start.isdigit() and len(start) < 19 else None

        async def messages() -> Any:
            position = (
                cursor if cursor is not None else await run_in_threadpool(queries.latest_event_id, web.db)
            )
            yield "retry: 2000\n\n"
            loop = asyncio.get_running_loop()
            ends = loop.time() + stream_seconds
            while loop.time() < ends and not await request.is_disconnected():
                batch, position = await run_in_threadpool(next_batch, web.db, position)
                if batch is not None:
                    yield sse_message(batch)
                else:
                    yield ": idle\n\n"
                await asyncio.sleep(1.0)

        return StreamingResponse(messages(), media_type="text/event-stream")

    return Guard(app, web.db, web.cookie_name, web.tls, web.allowed_hosts)


def _send_test_alerts(web: WebContext, actor: str) -> list[tuple[str, str]]:
    """Send a test message to every alert URL: (masked URL, "sent" or why not) each; audited."""
    from dynapot.analysis.alerts import Channel

    results = []
    for url in web.current_settings().alerts.urls:
        name = mask_url(url)
        try:
            Channel(url).send("dynapot: test alert", f"A test alert sent from the web interface by {actor}.")
            results.append((name, "sent"))
        except (OSError, ValueError) as exc:
            results.append((name, f"failed: {str(exc)[:200]}"))
    audit(web.db, actor, "alert.test", "alerts.urls", None, "; ".join(f"{n}: {r}" for n, r in results))
    return results
