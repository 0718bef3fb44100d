"""HTTP emulator: a web server whose headers, pages and errors fit the host's OS.

The protocol is h11's (sans-IO, strict); this module only decides what a Windows host (IIS
of its release), a Linux or BSD host (its distribution's Apache), a printer (embedded server)
or a router says, with the Server header of the product nmap found on the real hosts when it
found one (`SITES`, `SERVERS`), and records every request and every login attempt on its
form. Bounded: request size, requests per connection, idle time.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import time
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import parse_qs

import h11

from dynapot.events import Kind
from dynapot.services.contract import ConnectionInfo, Report, Service
from dynapot.services.http_request import Bad, Limits, Need, Request, parse
from dynapot.services.http_servers import Page, ServerProfile, profile_named, respond
from dynapot.services.profiles import Profile, choose

MAX_REQUEST = 16 * 1024  # bytes of request line, headers and body kept
MAX_REQUESTS = 20  # per connection
IDLE = 15.0


@dataclass(frozen=True, slots=True)
class Site:
    """What one kind of web server says: its Server header, its page's title, its 404 text."""

    server: str
    title: str
    not_found: str


def _iis(version: str) -> Site:
    return Site(f"Microsoft-IIS/{version}", "IIS Windows Server", "404 - File or directory not found.")


def _apache(version: str, comment: str, title: str) -> Site:
    return Site(f"Apache/{version} ({comment})", title, "Not Found")


_UBUNTU_PAGE = "Apache2 Ubuntu Default Page: It works"
_DEBIAN_PAGE = "Apache2 Debian Default Page: It works"
_CENTOS_PAGE = "Apache HTTP Server Test Page powered by CentOS"

# The web server a host of each system runs when nmap found none: IIS as its Windows release
# ships it, the distribution's Apache, a printer's or a router's own.
# IIS as each Windows release ships it (later ones: 10.0).
IIS = {"2000": "5.0", "xp": "5.1", "2003": "6.0", "vista": "7.0", "2008": "7.0", "7": "7.5", "2008r2": "7.5"}
IIS |= {"8": "8.0", "2012": "8.0", "8.1": "8.5", "2012r2": "8.5"}
SITES: tuple[Profile[Site], ...] = (
    *(Profile(_iis(version), os=f"windows-{release}") for release, version in IIS.items()),
    Profile(_iis("10.0"), os="windows"),
    Profile(
        Site("HP HTTP Server; HP LaserJet - embedded web server", "Device Status", "Page not found"),
        os="printer",
    ),
    Profile(Site("cisco-IOS", "Router login", "Not Found"), os="cisco"),
    Profile(_apache("2.4.58", "FreeBSD", "Apache HTTP Server Test Page"), os="bsd"),
    Profile(_apache("2.2.15", "CentOS", _CENTOS_PAGE), os="centos-6"),
    Profile(_apache("2.4.6", "CentOS", _CENTOS_PAGE), os="centos"),
    Profile(_apache("2.4.29", "Ubuntu", _UBUNTU_PAGE), os="ubuntu-18.04"),
    Profile(_apache("2.4.51", "Debian", _DEBIAN_PAGE), os="debian-11"),
    Profile(_apache("2.4.57", "Debian", _DEBIAN_PAGE), os="debian"),
    Profile(_apache("2.4.52", "Ubuntu", _UBUNTU_PAGE)),
)
# The Server header of the product nmap found on the real hosts, in that product's own form:
# {version} is nmap's, {comment} the OS comment of the host's own server (" (Ubuntu)"), if any.
SERVERS: tuple[Profile[str | None], ...] = (
    Profile(None, product="tomcat"),  # an Apache Tomcat: the host's own server line stays
    Profile("Microsoft-IIS/{version}", product="iis"),
    Profile("Apache/{version}{comment}", product="apache"),
    Profile("nginx/{version}{comment}", product="nginx"),
    Profile("lighttpd/{version}", product="lighttpd"),
    Profile(None),
)


_COMMENT = re.compile(r"\(+([A-Za-z][A-Za-z0-9 ._-]{0,30}?)\)+")


def site_for(info: ConnectionInfo) -> Site:
    """The web server this host imitates: its system's, with the Server header of nmap's product."""
    site = choose(SITES, info).what
    row = choose(SERVERS, info)
    version = row.version(info)
    if row.what is None or not version:
        return site
    # The OS comment nmap saw on the real server ("2.4.71 (Debian)": its extrainfo), else the one
    # the host's own server carries ("(Ubuntu)", "(FreeBSD)"); Apache says "(Unix)".
    seen = _COMMENT.fullmatch((info.version or "").partition(" ")[2].strip())
    comment = site.server[site.server.find(" (") :] if " (" in site.server else ""
    if row.product == "apache":
        comment = comment or " (Unix)"
    elif row.product == "nginx" and "ubuntu" not in info.identity.system.tags:
        comment = ""  # only Ubuntu's nginx names its distribution (Debian's says "nginx/1.22.1")
    server = row.what.format(version=version, comment=comment)
    if seen:
        server = f"{server.split(' (', 1)[0]} ({seen.group(1)})"
    return Site(server, site.title, site.not_found)


def _page(site: Site, info: ConnectionInfo) -> bytes:
    name = html.escape(info.identity.hostname)
    body = (
        f"<!DOCTYPE html><html><head><title>{html.escape(site.title)} - {name}</title></head><body>"
        f"<h1>{html.escape(site.title)}</h1><p>{name}</p>"
        '<form method="post" action="/login"><input name="username"><input name="password" type="password">'
        '<input type="submit" value="Log in"></form></body></html>'
    )
    return body.encode()


def _response(status: int, site: Site, body: bytes, *, keep_alive: bool) -> list[h11.Event]:
    headers = [
        ("Server", site.server),
        ("Date", formatdate(usegmt=True)),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
    ]
    if not keep_alive:
        headers.append(("Connection", "close"))
    return [h11.Response(status_code=status, headers=headers), h11.Data(data=body), h11.EndOfMessage()]


async def serve_http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: ConnectionInfo, report: Report
) -> None:
    site = site_for(info)
    product = profile_named(site.server)
    if product is not None:  # a server whose ways are recorded: answer as it does
        await _imitate(product, reader, writer, info, report, site)
        writer.close()
        return
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
    try:
        await _exchange(conn, reader, writer, info, report, site)
    except h11.RemoteProtocolError as exc:
        # Not HTTP, or broken HTTP: answer as the real server would, then hang up.
        report(Kind.BAD_REQUEST, str(exc)[:200], None)
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\nServer: " + site.server.encode() + b"\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
    writer.close()


async def _exchange(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    info: ConnectionInfo,
    report: Report,
    site: Site,
) -> None:
    for _ in range(MAX_REQUESTS):
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await asyncio.wait_for(reader.read(65536), IDLE)
                except TimeoutError:
                    data = b""
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data) and len(body) < MAX_REQUEST:
                body += event.data[: MAX_REQUEST - len(body)]
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed) or event is h11.PAUSED:
                break
        if request is None:
            break
        target = request.target.decode("latin-1")
        agent = dict(request.headers).get(b"user-agent", b"").decode("latin-1")
        report(Kind.REQUEST, f"{request.method.decode()} {target}", {"user_agent": agent[:200]})
        if request.method == b"POST" and target.startswith("/login"):
            form = parse_qs(bytes(body).decode("latin-1"))
            user, password = form.get("username", [""])[0], form.get("password", [""])[0]
            report(Kind.LOGIN, f"{user}:{password}", {"user": user, "password": password, "accepted": False})
            status, page = 401, _page(site, info)
        elif target in ("/", "/index.html", "/login"):
            status, page = 200, _page(site, info)
        else:
            status, page = 404, site.not_found.encode()
        keep_alive = conn.our_state is h11.SEND_RESPONSE and request.method != b"CONNECT"
        for event in _response(status, site, page, keep_alive=keep_alive):
            writer.write(conn.send(event) or b"")
        await writer.drain()
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            break
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            break


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(65536), IDLE)
    except (TimeoutError, OSError, ConnectionError):
        return b""


def _page_of(site: Site, info: ConnectionInfo) -> Page:
    """The site's page and when it was last changed: some weeks before the host's last boot."""
    age = info.identity.rng("http-mtime").uniform(7, 400) * 86400
    return Page(_page(site, info), float(int(info.identity.boot_time - age)))


async def _linger(reader: asyncio.StreamReader, quiet: float, limit: float = 30.0) -> None:
    """nginx's lingering close: read and drop what still comes until `quiet` seconds pass without
    a byte (at most `limit`), so that a body it did not read does not turn its close into a RST."""
    with contextlib.suppress(TimeoutError, OSError, ConnectionError):
        async with asyncio.timeout(limit):
            while await asyncio.wait_for(reader.read(65536), quiet):
                pass


async def _imitate(
    product: ServerProfile,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    info: ConnectionInfo,
    report: Report,
    site: Site,
) -> None:
    """Serve as `product` does (dynapot.services.http_servers): its parser's limits, its answers."""
    limits = Limits(fields=100 if product.name == "apache" else None)
    unread = False
    page = _page_of(site, info)
    buffer = b""
    for _ in range(MAX_REQUESTS):
        while True:
            parsed = parse(buffer, limits)
            if product.early_garbage and re.match(rb"[\r\n]*[^\r\nA-Z_-]", buffer):
                parsed = Bad("garbage", consumed=len(buffer))
            if not isinstance(parsed, Need):
                break
            if len(buffer) > 2 * MAX_REQUEST:
                parsed = Bad("field-too-long", consumed=len(buffer))
                break
            data = await _read(reader)
            if not data:
                return
            buffer += data[: 3 * MAX_REQUEST - len(buffer)]
        if isinstance(parsed, Request):
            target = parsed.target[:200]
            agent = (parsed.header("user-agent") or "")[:200]
            report(Kind.REQUEST, f"{parsed.method[:20]} {target}", {"user_agent": agent})
            length = parsed.header("content-length") or "0"
            # ASCII digits only ("²".isdigit() is true), and few: int() of thousands of digits raises.
            wanted = min(int(length), MAX_REQUEST) if re.fullmatch(r"[0-9]{1,15}", length) else 0
            body = buffer[parsed.consumed : parsed.consumed + wanted]
            if (
                len(body) < wanted
                and product.continue_first
                and "100-continue" in (parsed.header("expect") or "")
            ) and parsed.method not in ("GET", "HEAD"):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            # nginx answers a static site's POST without waiting for the body it will not use.
            expecting = "100-continue" in (parsed.header("expect") or "")
            unread = not product.continue_first and expecting and len(body) < wanted
            while len(body) < wanted and (product.continue_first or not expecting):
                data = await _read(reader)
                if not data:
                    return
                buffer += data[: 3 * MAX_REQUEST - len(buffer)]
                body = buffer[parsed.consumed : parsed.consumed + wanted]
            buffer = buffer[parsed.consumed + wanted :]
            if parsed.method == "POST" and parsed.target.startswith("/login"):
                form = parse_qs(body.decode("latin-1"))
                user, password = form.get("username", [""])[0], form.get("password", [""])[0]
                report(
                    Kind.LOGIN, f"{user}:{password}", {"user": user, "password": password, "accepted": False}
                )
        else:
            report(Kind.BAD_REQUEST, parsed.why, None)
            buffer = b""
        answer = respond(
            product,
            parsed,
            page,
            server=site.server,
            hostname=info.identity.hostname,
            port=info.dport,
            now=time.time(),
        )
        writer.write(answer.data)
        try:
            await writer.drain()
        except (OSError, ConnectionError):
            return
        if answer.close:
            if unread and product.linger:
                await _linger(reader, product.linger)
            return


SERVICES = (Service(("http",), "tcp", serve_http),)
