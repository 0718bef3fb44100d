"""Apache and nginx as a probe sees them: status lines, header order, error pages, reactions.

One `ServerProfile` per product, recorded from Debian 12's Apache 2.4 (Debian's security.conf:
TraceEnable Off) and nginx 1.22 serving a static site, with the realism probe suite
(dynapot.lab.probes): the reason phrases, the headers each kind of answer carries and in which
order, the error page templates, and `RULES`, which status each kind of odd request gets (a
request the parser refuses, `dynapot.services.http_request.Bad.why`, or a situation: a method
the static site does not allow, a missing Host, a path that climbs out of the root, ...).
`respond` turns a parsed request into the bytes the server would send; the page itself (the
site's content) is the caller's.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.utils import formatdate

from dynapot.services.http_request import Bad, Request, decoded, path_of

__all__ = ["APACHE", "NGINX", "Answer", "Page", "ServerProfile", "profile_named", "respond"]

_APACHE_TEMPLATE = (
    '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">\n'
    "<html><head>\n<title>{code} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n{text}"
    "<hr>\n<address>{server} Server at {host} Port {port}</address>\n</body></html>\n"
)
_APACHE_TEXTS = {
    400: "<p>Your browser sent a request that this server could not understand.<br />\n{extra}</p>\n",
    404: "<p>The requested URL was not found on this server.</p>\n",
    405: "<p>The requested method {method} is not allowed for this URL.</p>\n",
    414: "<p>The requested URL's length exceeds the capacity\nlimit for this server.<br />\n</p>\n",
    416: (
        "<p>None of the range-specifier values in the Range\n"
        "request-header field overlap the current extent\nof the selected resource.</p>\n"
    ),
    501: "<p>{method} not supported for current URL.<br />\n</p>\n",
}
_NGINX_TEMPLATE = (
    "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n"
    "{text}<hr><center>{server}</center>\r\n</body>\r\n</html>\r\n"
)


@dataclass(frozen=True, slots=True)
class ServerProfile:
    """One web server product's ways (see the module docstring)."""

    name: str
    reasons: dict[int, str]
    # Header names in order for a page (200/206), an error page, and OPTIONS; "" entries are skipped.
    page_headers: tuple[str, ...]
    error_headers: tuple[str, ...]
    rules: dict[str, int]  # situation -> status
    extra: dict[str, str]  # situation -> the line an error page adds
    allow: str = ""  # the Allow header of a static site
    early_garbage: bool = False  # a first byte no method starts with is refused at once
    error_charset: str = ""  # "; charset=iso-8859-1" on Apache's error pages
    no_length_on: frozenset[int] = frozenset()  # statuses sent without Content-Length (body until close)
    close_on: frozenset[int] = frozenset({400, 414, 501, 505})  # statuses that end the connection
    continue_first: bool = False  # "100 Continue" before waiting for a body
    linger: float = 0.0  # seconds of quiet a lingering close waits for, after a body left unread


APACHE = ServerProfile(
    name="apache",
    reasons={
        200: "OK", 206: "Partial Content", 400: "Bad Request", 404: "Not Found",
        405: "Method Not Allowed", 414: "Request-URI Too Long", 416: "Requested Range Not Satisfiable",
        501: "Not Implemented", 505: "HTTP Version Not Supported",
    },
    page_headers=(
        "Date", "Server", "Last-Modified", "ETag", "Accept-Ranges", "Content-Length", "Vary",
        "Content-Range", "Connection", "Content-Type",
    ),
    error_headers=(
        "Date", "Server", "Allow", "Content-Length", "Connection", "Content-Type", "Content-Range",
    ),
    rules={
        "line-too-long": 414, "field-too-long": 400, "too-many-fields": 400, "bad-version": 400,
        "unsupported-version": 400, "bad-header": 400, "lowercase-method": 501, "garbage": 400,
        "no-host": 400, "bad-path": 400, "bad-escape": 400, "nul-in-path": 404, "options-star": 200,
        "not-allowed": 405, "trace": 405, "connect": 405, "unknown-method": 501, "post": 200,
    },
    extra={
        "field-too-long": "Size of a request header field exceeds server limit.",
        "too-many-fields": "The number of request header fields exceeds this server's limit.",
    },
    allow="GET,POST,OPTIONS,HEAD",
    error_charset="; charset=iso-8859-1",
    no_length_on=frozenset({416}),
    continue_first=True,
)  # fmt: skip

NGINX = ServerProfile(
    name="nginx",
    reasons={
        200: "OK", 206: "Partial Content", 400: "Bad Request", 404: "Not Found", 405: "Not Allowed",
        414: "Request-URI Too Large", 416: "Requested Range Not Satisfiable", 501: "Not Implemented",
        505: "HTTP Version Not Supported",
    },
    page_headers=(
        "Server", "Date", "Content-Type", "Content-Length", "Last-Modified", "Connection", "ETag",
        "Content-Range", "Accept-Ranges",
    ),
    error_headers=("Server", "Date", "Content-Type", "Content-Length", "Connection", "Content-Range"),
    rules={
        "line-too-long": 414, "field-too-long": 400, "bad-version": 400, "unsupported-version": 505,
        "bad-header": 400, "lowercase-method": 400, "garbage": 400, "no-host": 400, "bad-path": 400,
        "bad-escape": 400, "nul-in-path": 400, "options-star": 400, "not-allowed": 405, "trace": 405,
        "connect": 400, "unknown-method": 405, "post": 405, "missing-not-allowed": 404,
    },
    extra={"field-too-long": "Request Header Or Cookie Too Large"},
    early_garbage=True,
    linger=5.0,  # lingering_timeout
)  # fmt: skip

PROFILES = {"apache": APACHE, "nginx": NGINX}


def profile_named(server_header: str) -> ServerProfile | None:
    """The profile of a Server header ("Apache/2.4.71 (Debian)", "nginx/1.22.1"), if one is recorded."""
    word = server_header.split("/", 1)[0].lower()
    return PROFILES.get(word)


@dataclass(frozen=True, slots=True)
class Page:
    """The site's one page, as the server's file system holds it."""

    body: bytes
    mtime: float
    paths: tuple[str, ...] = ("/", "/index.html")


@dataclass(frozen=True, slots=True)
class Answer:
    data: bytes
    close: bool
    status: int


_STATIC = ("GET", "HEAD")
_KNOWN = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH"})
_RANGE = re.compile(r"bytes=(\d{0,15})-(\d{0,15})")  # bounded: no int() of a 5,000-digit number


def _etag(profile: ServerProfile, page: Page) -> str:
    if profile is APACHE:  # FileETag MTime Size
        return f'"{len(page.body):x}-{int(page.mtime * 1_000_000):x}"'
    return f'"{int(page.mtime):x}-{len(page.body):x}"'


def _situation(profile: ServerProfile, request: Request, page: Page) -> str:
    """What kind of request this is for the static site: "page", "missing" or a RULES key."""
    method, target = request.method, request.target
    if method == "CONNECT":
        return "connect"
    if target == "*":
        return "options-star" if method == "OPTIONS" else "bad-path"
    if not target.startswith(("/", "http://", "https://")):
        return "bad-path"
    if request.version >= (1, 1) and request.header("host") is None:
        return "no-host"
    path = decoded(path_of(target))
    if path is None:
        return "bad-escape"
    if b"\0" in path:
        return "nul-in-path"
    depth = 0
    for part in path.split(b"/"):
        depth += -1 if part == b".." else (part not in (b"", b"."))
        if depth < 0:
            return "bad-path"
    exists = path.decode("latin-1") in page.paths
    if method == "TRACE":
        return "trace"
    if method not in _KNOWN:
        return "unknown-method"
    if method in _STATIC:
        return "page" if exists else "missing"
    if method == "OPTIONS" and profile is APACHE:
        return "options"
    if method == "POST":
        return ("page" if profile.rules["post"] == 200 else "not-allowed") if exists else "missing"
    if not exists and "missing-not-allowed" in profile.rules:
        return "missing-not-allowed"
    return "not-allowed"


def _host_port(request: Request | None, hostname: str, port: int) -> tuple[str, int]:
    """The name and port an Apache error page signs with: the Host header's, else its own."""
    if request is None:
        return hostname, port
    authority = request.header("host") or ""
    if request.method == "CONNECT":
        authority = request.target
    name, _, text = authority.partition(":")
    if name and re.fullmatch(r"[A-Za-z0-9.-]{1,253}", name):
        return name, int(text) if re.fullmatch(r"[0-9]{1,5}", text) and 0 < int(text) < 65536 else port
    return hostname, port


def _error_body(
    profile: ServerProfile, status: int, why: str, method: str, server: str, host: str, port: int
) -> bytes:
    reason = profile.reasons.get(status, "Error")
    extra = profile.extra.get(why, "")
    if profile is APACHE:
        text = _APACHE_TEXTS.get(status, "").format(method=html.escape(method), extra=extra)
        page = _APACHE_TEMPLATE.format(
            code=status, reason=reason, text=text, server=server, host=host, port=port
        )
    else:
        title = f"{status} {extra}" if extra else f"{status} {reason}"
        text = f"<center>{extra}</center>\r\n" if extra else ""
        page = _NGINX_TEMPLATE.format(title=title, code=status, reason=reason, text=text, server=server)
    return page.encode("latin-1", "replace")


def _head(profile: ServerProfile, status: int, order: tuple[str, ...], values: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {profile.reasons.get(status, 'Unknown')}"]
    lines += [f"{name}: {values[name]}" for name in order if name in values]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


def _keep_alive(request: Request | None) -> bool:
    if request is None or request.version < (1, 0):
        return False
    connection = (request.header("connection") or "").lower()
    if request.version == (1, 0):
        return connection == "keep-alive"
    return connection != "close"


def respond(
    profile: ServerProfile,
    parsed: Request | Bad,
    page: Page,
    *,
    server: str,
    hostname: str,
    port: int,
    now: float,
) -> Answer:
    """The server's answer to one parsed request (or refusal), as bytes."""
    date = formatdate(now, usegmt=True)
    if isinstance(parsed, Bad):
        status = profile.rules.get(parsed.why, 400)
        host, sign_port = hostname, port
        body = _error_body(profile, status, parsed.why, parsed.method, server, host, sign_port)
        values = {"Date": date, "Server": server, "Content-Length": str(len(body)), "Connection": "close"}
        values["Content-Type"] = "text/html" + profile.error_charset
        if profile is APACHE and status in (405, 501):
            values["Allow"] = profile.allow
        return Answer(_head(profile, status, profile.error_headers, values) + body, True, status)
    request = parsed
    situation = _situation(profile, request, page)
    keep = _keep_alive(request)
    values = {"Date": date, "Server": server}
    if situation == "page" or (situation == "missing" and request.version == (0, 9)):
        if request.version == (0, 9):  # HTTP/0.9: the body alone, then the end
            if situation == "page":
                return Answer(page.body, True, 200)
            host, sign_port = _host_port(None, hostname, port)
            return Answer(_error_body(profile, 404, "", "GET", server, host, sign_port), True, 404)
        body, status = page.body, 200
        values |= {
            "Last-Modified": formatdate(page.mtime, usegmt=True),
            "ETag": _etag(profile, page),
            "Accept-Ranges": "bytes",
            "Content-Type": "text/html",
        }
        if profile is APACHE:
            values["Vary"] = "Accept-Encoding"
        match = _RANGE.fullmatch((request.header("range") or "").strip())
        if match and (match.group(1) or match.group(2)):
            first = int(match.group(1) or 0) if match.group(1) else max(len(body) - int(match.group(2)), 0)
            last = (
                min(int(match.group(2)), len(body) - 1)
                if match.group(1) and match.group(2)
                else len(body) - 1
            )
            if first >= len(body) or first > last:
                status = 416
                body = _error_body(
                    profile, 416, "", request.method, server, *_host_port(request, hostname, port)
                )
                values = {"Date": date, "Server": server, "Content-Type": "text/html" + profile.error_charset}
                values["Content-Range"] = f"bytes */{len(page.body)}"
                if profile is APACHE:
                    values.pop("Content-Range")
                keep = False
            else:
                status, body = 206, body[first : last + 1]
                values["Content-Range"] = f"bytes {first}-{last}/{len(page.body)}"
                if profile is NGINX:
                    values.pop("Accept-Ranges")
        if status not in profile.no_length_on:
            values["Content-Length"] = str(len(body))
        if profile is NGINX:
            values["Connection"] = "keep-alive" if keep else "close"
        elif not keep:
            values["Connection"] = "close"
        order = profile.page_headers if status != 416 else profile.error_headers
        head = _head(profile, status, order, values)
        return Answer(head + (b"" if request.method == "HEAD" else body), not keep, status)
    if situation == "options":
        values |= {"Allow": profile.allow, "Content-Length": "0", "Content-Type": "text/html"}
        if not keep:
            values["Connection"] = "close"
        return Answer(_head(profile, 200, profile.error_headers, values), not keep, 200)
    if situation == "options-star" and profile.rules["options-star"] == 200:
        values |= {"Content-Length": "0"}
        if not keep:
            values["Connection"] = "close"
        return Answer(_head(profile, 200, profile.error_headers, values), not keep, 200)
    status = 404 if situation == "missing" else profile.rules.get(situation, 400)
    keep = keep and status not in profile.close_on
    host, sign_port = _host_port(request, hostname, port)
    body = _error_body(profile, status, situation, request.method, server, host, sign_port)
    values |= {"Content-Length": str(len(body)), "Content-Type": "text/html" + profile.error_charset}
    if profile is APACHE and status in (405, 501):
        values["Allow"] = "" if situation == "trace" else profile.allow
    if profile is NGINX:
        values["Connection"] = "keep-alive" if keep else "close"
    elif not keep:
        values["Connection"] = "close"
    head = _head(profile, status, profile.error_headers, values)
    return Answer(head + (b"" if request.method == "HEAD" else body), not keep, status)
