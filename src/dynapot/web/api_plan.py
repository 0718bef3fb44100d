"""The API of the plan and virtual hosts pages: GET /api/v1/plan, POST /api/v1/plan/apply,
GET /api/v1/virtual-hosts (included by `api.router`).

As everywhere under /api/v1 the Guard has answered 401 without credentials and 403 to a cookie
request without its CSRF header before these run; applying a plan needs the admin role.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordBearer
from pydantic import BaseModel, Field

from dynapot.deploy.review import PlanChanged
from dynapot.web import plan_queries
from dynapot.web.accounts import Identity
from dynapot.web.context import WebContext
from dynapot.web.plan_actions import approve_plan

__all__ = ["router"]

_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/token", auto_error=False)
router = APIRouter(tags=["plan"])  # under api.router, whose prefix is /api/v1


def _context(request: Request) -> WebContext:
    return request.app.state.web


def _identity(request: Request, _token: Annotated[str | None, Depends(_bearer)]) -> Identity:
    who = request.state.identity
    if who is None:
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    return who


def _admin(who: Annotated[Identity, Depends(_identity)]) -> Identity:
    if not who.is_admin:
        raise HTTPException(403, "only an admin may apply a plan")
    return who


Ctx = Annotated[WebContext, Depends(_context)]


class ApplyIn(BaseModel):
    digest: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="the pending plan's digest, as GET /plan gave it"
    )


class ApplyOut(BaseModel):
    status: str
    digest: str
    network: str
    approved_by: str | None
    approved_at: str | None


@router.get("/plan")
def get_plan(web: Ctx, _who: Annotated[Identity, Depends(_identity)]) -> dict[str, Any]:
    """The apply mode (auto or hold), the plan pending (null: nothing to change) with its diff and
    why, the last plan applied, the history's latest rows."""
    return plan_queries.plan_view(web.db, web.current_settings())


@router.post(
    "/plan/apply",
    response_model=ApplyOut,
    responses={403: {"description": "not an admin"}, 409: {"description": "the plan changed, review again"}},
)
def post_apply(web: Ctx, who: Annotated[Identity, Depends(_admin)], body: ApplyIn) -> Any:
    """Approve the pending plan with this digest (admin, audited): the daemon deploys it on its next
    round if its plan is still the same. 409 when it is no longer the plan pending."""
    try:
        return approve_plan(web.db, who.name, body.digest)
    except PlanChanged as exc:
        return JSONResponse({"detail": str(exc)}, status_code=409)


@router.get("/virtual-hosts")
def get_virtual_hosts(web: Ctx, _who: Annotated[Identity, Depends(_identity)]) -> dict[str, Any]:
    """Every virtual host: personality and OS class, MAC, services per port with what they imitate,
    redirects in effect, events in the last day and the last one."""
    return plan_queries.virtual_hosts(web.db, web.current_settings())
