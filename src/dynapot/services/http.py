"""HTTP emulator: a web server whose headers, pages and errors fit the host's OS.

The protocol is h11's (sans-IO, strict); this module only decides what a Windows host
(IIS), a Linux or BSD host (Apache), a printer (embedded server) or a router says, and
records every request and every login attempt on its form. Bounded: request size, requests
per connection, idle time.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import parse_qs

import h11

from dynapot.services.contract import ConnectionInfo, Report, Service
from dynapot.services.identity import host_name

MAX_REQUEST = 16 * 1024  # bytes of request line, headers and body kept
MAX_REQUESTS = 20  # per connection
IDLE = 15.0


@dataclass(frozen=True, slots=True)
class Flavour:
    server: str
    title: str
    not_found: str


def flavour_for(personality: str | None) -> Flavour:
    """The web server a host of this OS plausibly runs."""
    name = (personality or "").lower()
    if "windows" in name:
        version = (
            "5.1"
            if "xp" in name
            else "6.0"
            if "2003" in name
            else "7.5"
            if ("windows 7" in name or "2008" in name)
            else "8.5"
            if ("2012" in name or "windows 8" in name)
            else "10.0"
        )
        return Flavour(f"Microsoft-IIS/{version}", "IIS Windows Server", "404 - File or directory not found.")
    if "printer" in name or "laserjet" in name:
        return Flavour("HP HTTP Server; HP LaserJet - embedded web server", "Device Status", "Page not found")
    if "cisco" in name or "router" in name:
        return Flavour("cisco-IOS", "Router login", "Not Found")
    if "bsd" in name:
        return Flavour("Apache/2.4.58 (FreeBSD)", "Apache HTTP Server Test Page", "Not Found")
    return Flavour("Apache/2.4.52 (Ubuntu)", "Apache2 Ubuntu Default Page: It works", "Not Found")


def imitate(flavour: Flavour, product: str | None, version: str | None) -> Flavour:
    """The Server header of the product nmap found on the real hosts, in that product's own form."""
    name, number = (product or "").lower(), (version or "").split(" ")[0][:40]
    if not number or not number.replace(".", "").replace("-", "").isalnum():
        return flavour
    # The OS comment the flavour's server carries ("(Ubuntu)", "(FreeBSD)"), if any.
    comment = flavour.server[flavour.server.find(" (") :] if " (" in flavour.server else ""
    if "iis" in name:
        server = f"Microsoft-IIS/{number}"
    elif "apache" in name and "tomcat" not in name:
        server = f"Apache/{number}{comment or ' (Unix)'}"
    elif "nginx" in name:
        server = f"nginx/{number}{comment}"
    elif "lighttpd" in name:
        server = f"lighttpd/{number}"
    else:
        return flavour
    return Flavour(server, flavour.title, flavour.not_found)


def _page(flavour: Flavour, info: ConnectionInfo) -> bytes:
    name = html.escape(host_name(info))
    body = (
        f"<!DOCTYPE html><html><head><title>{html.escape(flavour.title)} - {name}</title></head><body>"
        f"<h1>{html.escape(flavour.title)}</h1><p>{name}</p>"
        '<form method="post" action="/login"><input name="username"><input name="password" type="password">'
        '<input type="submit" value="Log in"></form></body></html>'
    )
    return body.encode()


def _response(status: int, flavour: Flavour, body: bytes, *, keep_alive: bool) -> list[h11.Event]:
    headers = [
        ("Server", flavour.server),
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
    flavour = imitate(flavour_for(info.personality), info.product, info.version)
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
    try:
        await _exchange(conn, reader, writer, info, report, flavour)
    except h11.RemoteProtocolError as exc:
        # Not HTTP, or broken HTTP: answer as the real server would, then hang up.
        report("bad-request", str(exc)[:200], None)
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\nServer: " + flavour.server.encode() + b"\r\n"
                b"Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
    writer.close()


async def _exchange(
    conn: h11.Connection,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    info: ConnectionInfo,
    report: Report,
    flavour: Flavour,
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
        report("request", f"{request.method.decode()} {target}", {"user_agent": agent[:200]})
        if request.method == b"POST" and target.startswith("/login"):
            form = parse_qs(bytes(body).decode("latin-1"))
            user, password = form.get("username", [""])[0], form.get("password", [""])[0]
            report("login", f"{user}:{password}", {"user": user, "password": password, "accepted": False})
            status, page = 401, _page(flavour, info)
        elif target in ("/", "/index.html", "/login"):
            status, page = 200, _page(flavour, info)
        else:
            status, page = 404, flavour.not_found.encode()
        keep_alive = conn.our_state is h11.SEND_RESPONSE and request.method != b"CONNECT"
        for event in _response(status, flavour, page, keep_alive=keep_alive):
            writer.write(conn.send(event) or b"")
        await writer.drain()
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            break
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            break


SERVICES = (Service(("http",), "tcp", serve_http),)
