"""Who may do what: identity on every request, security headers, CSRF, login rate limits.

`Guard` is a pure ASGI middleware in front of every route. It resolves the caller (a bearer
token in `Authorization`, else the session cookie) and denies by default: only `PUBLIC`
paths (login, static files, /health, the token endpoint) are served without one; an API path
answers 401, a page redirects to /login. So a route added later is protected without saying so.

Before anything else it refuses (400) a request whose Host header is not one of ours
(`web.hosts`: DNS rebinding protection).

CSRF: the synchronizer-token pattern (and, in depth, a browser's Origin header must name this
host on every state-changing request). Each browser session has its own random token, kept
server-side with the session; every state-changing request made with the cookie must carry it
(the `csrf_token` form field, or the `X-CSRF-Token` header for the API), compared in constant
time. Requests with a bearer token carry no ambient credential and need none. The login form,
before any session exists, uses a double-submit token (cookie and field must match).

`LoginLimiter` bounds login attempts per client address (a sliding minute, the table of
addresses itself bounded); the account lockout is `accounts.authenticate`'s.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio.to_thread

from dynapot.db import Database
from dynapot.web.accounts import Identity, session_identity, token_identity
from dynapot.web.hosts import host_name

__all__ = [
    "PUBLIC",
    "Guard",
    "LoginLimiter",
    "check_csrf",
    "security_headers",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC_PATHS = frozenset({"/login", "/health", "/api/v1/token"})
PUBLIC_PREFIXES = ("/static/",)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PUBLIC = (PUBLIC_PATHS, PUBLIC_PREFIXES)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def security_headers(tls: bool) -> list[tuple[bytes, bytes]]:
    """The headers every response carries."""
    headers = [
        (b"content-security-policy", CSP.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),  # no-referrer would make Origin "null"
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    ]
    if tls:
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return headers


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def _cookie(scope: Scope, name: str) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _same_origin(scope: Scope) -> bool:
    """Whether a state-changing request comes from this site: its Origin header, when the browser
    sends one, names the host the request was sent to (defence in depth beside the CSRF token and
    SameSite; scripts without a browser send no Origin)."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    host = _header(scope, b"host")
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and host is not None and rest == host and scheme in ("http", "https")


def check_csrf(identity: Identity | None, given: str | None) -> bool:
    """Whether a state-changing request made with the session cookie carries its session's token."""
    if identity is None or identity.csrf_token is None:
        return True  # a bearer token: no ambient credential, nothing to forge
    return given is not None and secrets.compare_digest(given.encode(), identity.csrf_token.encode())


@dataclass
class Guard:
    """The ASGI middleware: headers on every response, an identity or a refusal for every request."""

    app: ASGIApp
    db: Database
    cookie_name: str
    tls: bool
    allowed_hosts: frozenset[str]
    refused_hosts: int = 0
    _headers: list[tuple[bytes, bytes]] = field(init=False)

    def __post_init__(self) -> None:
        self._headers = security_headers(self.tls)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        is_static = path.startswith("/static/")
        if not self._host_allowed(scope):  # DNS rebinding: before anything else, even static files
            self.refused_hosts += 1
            await _plain(send, 400, b"400: unknown Host", "text/plain", self._headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in {k for k, _ in self._headers}]
                headers.extend(self._headers)
                if not is_static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        identity = None if is_static else await anyio.to_thread.run_sync(self._identify, scope)
        scope.setdefault("state", {})["identity"] = identity
        if identity is None and not _is_public(path):
            await self._refuse(scope, send_with_headers, path)
            return
        if scope["method"] in UNSAFE and not _same_origin(scope):
            await _plain(send_with_headers, 403, b"403: cross-origin request refused", "text/plain")
            return
        api = path.startswith("/api/")
        unsafe = api and identity is not None and scope["method"] in UNSAFE
        if unsafe and not check_csrf(identity, _header(scope, b"x-csrf-token")):
            await _plain(
                send_with_headers, 403, b'{"detail":"missing or wrong CSRF token"}', "application/json"
            )
            return
        await self.app(scope, receive, send_with_headers)

    def _host_allowed(self, scope: Scope) -> bool:
        hosts = [value for key, value in scope.get("headers", ()) if key == b"host"]
        return len(hosts) == 1 and host_name(hosts[0].decode("latin-1")) in self.allowed_hosts

    def _identify(self, scope: Scope) -> Identity | None:
        authorization = _header(scope, b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return None
            return token_identity(self.db, token.strip())
        cookie = _cookie(scope, self.cookie_name)
        return session_identity(self.db, cookie) if cookie else None

    async def _refuse(self, scope: Scope, send: Send, path: str) -> None:
        if path.startswith("/api/") or path == "/openapi.json":
            await _plain(
                send,
                401,
                b'{"detail":"not authenticated"}',
                "application/json",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        target = "/login"
        if scope["method"] == "GET" and path not in ("/", "/logout"):
            target += "?next=" + quote(path, safe="/")
        await _plain(send, 303, b"", "text/plain", [(b"location", target.encode())])


async def _plain(
    send: Send, status: int, body: bytes, content_type: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


class LoginLimiter:
    """At most `per_minute` login attempts per client address in any minute; `refused` counts the rest.

    The table keeps at most `max_clients` addresses (the least recently seen go first), so that a
    spray of source addresses cannot grow it without bound.
    """

    def __init__(
        self, per_minute: int, *, max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        self.per_minute = per_minute
        self.max_clients = max_clients
        self.refused = 0
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, client: str) -> bool:
        """Count one attempt by `client`; False when it is over the limit (then not counted again)."""
        now = self._clock()
        attempts = self._seen.pop(client, None) or deque()
        while attempts and attempts[0] <= now - 60:
            attempts.popleft()
        self._seen[client] = attempts
        while len(self._seen) > self.max_clients:
            self._seen.popitem(last=False)
        if len(attempts) >= self.per_minute:
            self.refused += 1
            return False
        attempts.append(now)
        return True
