"""Real alert receivers for tests: an SMTP server (aiosmtpd) and a webhook (HTTP) server.

Both listen on an address the test chooses (loopback, or a lab namespace's address when
started inside it) and keep what they receive for the test to read.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SmtpReceiver:
    """aiosmtpd on (host, port); `messages` are the parsed e-mails received."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.messages: list[Message] = []
        self.host, self.port = host, free_port(host)
        self._controller = Controller(self, hostname=host, port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def url(self, to: str = "admin@lab.example") -> str:
        return f"mailto://{self.host}:{self.port}?from=dynapot@lab.example&to={to}&mode=insecure"

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class WebhookReceiver:
    """An HTTP server keeping every POSTed JSON body; `status` is what it answers."""

    def __init__(self, host: str = "127.0.0.1", status: int = 200) -> None:
        self.bodies: list[dict] = []
        self.status = status
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length", 0)), 1 << 20)
                body = self.rfile.read(length)
                with contextlib.suppress(ValueError):
                    receiver.bodies.append(json.loads(body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = host, self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1})

    def url(self) -> str:
        return f"json://{self.host}:{self.port}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass (bounded; never waits forever)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


@contextlib.contextmanager
def receivers(host: str = "127.0.0.1") -> Iterator[tuple[SmtpReceiver, WebhookReceiver]]:
    with SmtpReceiver(host) as smtp, WebhookReceiver(host) as hook:
        yield smtp, hook


def serve_into(folder: str, seconds: float) -> None:
    """Run both receivers on loopback, writing what arrives into `folder` (for another namespace).

    Prints one JSON line with the two URLs, then serves for at most `seconds`.
    """
    import pathlib

    out = pathlib.Path(folder)
    with receivers() as (smtp, hook):
        print(json.dumps({"smtp": smtp.url(), "webhook": hook.url()}), flush=True)
        deadline = time.monotonic() + seconds
        mails = hooks = 0  # how many of each are written
        while time.monotonic() < deadline:
            # Count what was written, not what has arrived by now: a message that arrives while
            # these are written would otherwise be counted and never written.
            for message in smtp.messages[mails:]:
                (out / f"mail-{mails}.eml").write_bytes(message.as_bytes())
                mails += 1
            for body in hook.bodies[hooks:]:
                (out / f"hook-{hooks}.json").write_text(json.dumps(body))
                hooks += 1
            time.sleep(0.1)


if __name__ == "__main__":
    import sys

    serve_into(sys.argv[1], float(sys.argv[2]))
