"""Apache and nginx as their recorded profiles answer: the parser and the answers, sans-IO."""

from __future__ import annotations

import pytest

from dynapot.services.http_request import Bad, Limits, Need, parse
from dynapot.services.http_servers import APACHE, NGINX, Page, respond

PAGE = Page(b"<html>It works</html>", 1_700_000_000.0)


def answer(profile, data: bytes) -> bytes:
    parsed = parse(data, Limits(fields=100 if profile is APACHE else None))
    assert not isinstance(parsed, Need)
    server = "Apache/2.4.71 (Debian)" if profile is APACHE else "nginx/1.22.1"
    return respond(profile, parsed, PAGE, server=server, hostname="web01", port=80, now=0.0).data


def test_the_parser_never_raises_and_names_what_is_wrong() -> None:
    limits = Limits()
    assert isinstance(parse(b"GET / HTTP/1.1\r\nHost: x", limits), Need)
    assert parse(b"\r\nGET / HTTP/1.0\r\n\r\n", limits).consumed == 20
    assert parse(b"GET /\r\n", limits).version == (0, 9)
    cases = {
        b"get / HTTP/1.0\r\n\r\n": "lowercase-method",
        b"GET / HTTP/9.9\r\n\r\n": "unsupported-version",
        b"GET / HTTP/X.Y\r\n\r\n": "bad-version",
        b"GET / HTTP/1.0\r\nno colon\r\n\r\n": "bad-header",
        b"GET / HTTP/1.0\r\nX: " + b"a" * 9000 + b"\r\n\r\n": "field-too-long",
        b"GET / HTTP/1.0\r\n" + b"X: v\r\n" * 101 + b"\r\n": "too-many-fields",
        b"GET /" + b"a" * 9000 + b" HTTP/1.0\r\n\r\n": "line-too-long",
        b"\x01\x02 junk\r\n": "garbage",
    }
    for data, why in cases.items():
        result = parse(data, limits)
        assert isinstance(result, Bad) and result.why == why, data[:30]


def test_a_page_with_apaches_headers_in_apaches_order() -> None:
    head = answer(APACHE, b"GET / HTTP/1.0\r\n\r\n").split(b"\r\n\r\n")[0].decode()
    names = [line.split(":")[0] for line in head.splitlines()[1:]]
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert names == [
        "Date", "Server", "Last-Modified", "ETag", "Accept-Ranges", "Content-Length", "Vary", "Connection",
        "Content-Type",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("request_", "apache", "nginx"),
    [
        (b"FOO / HTTP/1.0\r\n\r\n", b"HTTP/1.1 501 Not Implemented", b"HTTP/1.1 405 Not Allowed"),
        (b"get / HTTP/1.0\r\n\r\n", b"HTTP/1.1 501 Not Implemented", b"HTTP/1.1 400 Bad Request"),
        (b"TRACE / HTTP/1.0\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed", b"HTTP/1.1 405 Not Allowed"),
        (b"GET / HTTP/9.9\r\n\r\n", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 505 HTTP Version Not Supported"),
        (b"GET /x HTTP/1.0\r\n\r\n", b"HTTP/1.1 404 Not Found", b"HTTP/1.1 404 Not Found"),
        (b"GET /../../etc/passwd HTTP/1.0\r\n\r\n", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 400 Bad Request"),
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 400 Bad Request"),  # no Host
        (b"OPTIONS * HTTP/1.0\r\n\r\n", b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"),
        (
            b"GET / HTTP/1.0\r\nRange: bytes=0-9\r\n\r\n",
            b"HTTP/1.1 206 Partial Content",
            b"HTTP/1.1 206 Partial Content",
        ),
    ],
)
def test_each_server_its_own_reaction(request_: bytes, apache: bytes, nginx: bytes) -> None:
    assert answer(APACHE, request_).startswith(apache + b"\r\n")
    assert answer(NGINX, request_).startswith(nginx + b"\r\n")


def test_error_pages_are_the_servers_own() -> None:
    apache = answer(APACHE, b"GET /x HTTP/1.1\r\nHost: shop.example:8080\r\n\r\n")
    assert apache.endswith(
        b"<hr>\n<address>Apache/2.4.71 (Debian) Server at shop.example Port 8080</address>\n</body></html>\n"
    )
    assert b"Content-Type: text/html; charset=iso-8859-1\r\n" in apache
    nginx = answer(NGINX, b"GET / HTTP/1.0\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    assert b"<title>400 Request Header Or Cookie Too Large</title>" in nginx
    assert nginx.endswith(b"<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n")


def test_http_0_9_gets_the_body_alone() -> None:
    assert answer(APACHE, b"GET /\r\n") == PAGE.body


def test_huge_numbers_are_not_converted() -> None:
    ranged = answer(APACHE, b"GET / HTTP/1.0\r\nRange: bytes=" + b"9" * 5000 + b"-\r\n\r\n")
    assert ranged.startswith(b"HTTP/1.1 200 OK\r\n")  # not a range Apache could take: the whole page


def test_a_huge_content_length_is_refused_not_a_crash() -> None:
    import asyncio

    from dynapot.services.contract import ConnectionInfo
    from dynapot.services.http import serve_http

    async def main() -> bytes:
        info = ConnectionInfo(
            "tcp", "127.0.0.1", 1, "198.18.0.70", 80, "Linux 5.4", "t", "Apache httpd", "2.4.71"
        )
        server = await asyncio.start_server(
            lambda r, w: serve_http(r, w, info, lambda *a: None), "127.0.0.1", 0
        )
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(b"POST / HTTP/1.0\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        server.close()
        return data

    assert asyncio.run(main()).startswith(b"HTTP/1.1 200 OK\r\n")


def test_latin1_digits_are_not_numbers() -> None:
    page = answer(APACHE, b"GET /x HTTP/1.1\r\nHost: a.example:\xb2\xb3\r\n\r\n")
    assert b"Server at a.example Port 80</address>" in page
