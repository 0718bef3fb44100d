"""The plan page (what would change; apply or hold) and the virtual hosts page.

`register(app, render, web)` adds the routes to the application `create_app` builds. Apply and
Hold are forms with the session's CSRF token, for admins only (a viewer sees the plan and no
button; a forged POST gets 403); both are audited with the plan's digest. Apply approves the
plan only while it is still the one pending (`dynapot.web.plan_actions.approve_plan`): the daemon
deploys it on its next round, unless its plan changed meanwhile.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from dynapot.deploy.review import PlanChanged
from dynapot.web import plan_queries
from dynapot.web.accounts import Identity, audit
from dynapot.web.context import WebContext
from dynapot.web.plan_actions import approve_plan
from dynapot.web.security import check_csrf

__all__ = ["register"]


def register(app: Any, render: Any, web: WebContext) -> None:
    """Add /plan, /plan/apply, /plan/hold and /virtual-hosts to `app`."""

    def plan_page(request: Request, status: int = 200, error: str = "", notice: str = "") -> HTMLResponse:
        view = plan_queries.plan_view(web.db, web.current_settings())
        return render(request, "plan", status, view=view, error=error, notice=notice)

    @app.get("/plan", include_in_schema=False)
    def plan_view(request: Request) -> Any:
        done = request.query_params.get("done", "")
        notices = {
            "apply": "approved: the daemon deploys this plan within seconds if it is still the same",
            "hold": "held: the plan stays pending",
        }
        return plan_page(request, notice=notices.get(done, ""))

    async def _checked_form(request: Request, action: str) -> tuple[Identity, str] | PlainTextResponse:
        who: Identity = request.state.identity
        form = await request.form(max_files=0, max_fields=10)
        if not check_csrf(who, str(form.get("csrf_token", ""))):
            return PlainTextResponse("403: missing or wrong CSRF token", status_code=403)
        if not who.is_admin:
            return PlainTextResponse(f"403: only an admin may {action} a plan", status_code=403)
        return who, str(form.get("digest", ""))[:100]

    @app.post("/plan/apply", include_in_schema=False)
    async def plan_apply(request: Request) -> Any:
        checked = await _checked_form(request, "apply")
        if isinstance(checked, PlainTextResponse):
            return checked
        who, digest = checked
        try:
            await run_in_threadpool(approve_plan, web.db, who.name, digest)
        except PlanChanged as exc:
            return plan_page(request, 409, error=str(exc))
        return RedirectResponse("/plan?" + urlencode({"done": "apply"}), status_code=303)

    @app.post("/plan/hold", include_in_schema=False)
    async def plan_hold(request: Request) -> Any:
        checked = await _checked_form(request, "hold")
        if isinstance(checked, PlainTextResponse):
            return checked
        who, digest = checked
        await run_in_threadpool(audit, web.db, who.name, "plan.hold", "plan", None, digest or None)
        return RedirectResponse("/plan?" + urlencode({"done": "hold"}), status_code=303)

    @app.get("/virtual-hosts", include_in_schema=False)
    def virtual_hosts_view(request: Request) -> Any:
        data = plan_queries.virtual_hosts(web.db, web.current_settings(), limit=plan_queries.PAGE_HOSTS)
        return render(request, "virtual_hosts", **data)
