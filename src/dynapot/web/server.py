"""Serving the web interface: uvicorn on one address, over TLS unless told otherwise."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from dynapot.config import split_listen
from dynapot.sensor.privileges import drop_privileges, user_entry
from dynapot.web.app import create_app
from dynapot.web.context import WebContext
from dynapot.web.hosts import allowed_hosts
from dynapot.web.pool import hold_connections
from dynapot.web.tls import self_signed

__all__ = ["Listen", "ListenError", "parse_listen", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listen:
    host: str
    port: int


def parse_listen(text: str) -> Listen:
    """`127.0.0.1:8443`, `[::1]:8443` or `localhost:8443`; ValueError says what is wrong."""
    return Listen(*split_listen(text))


class ListenError(OSError):
    """The address cannot be listened on; the message says which and why, in one line."""


def serve(
    web: WebContext,
    listen: Listen,
    *,
    cert: Path | None = None,
    key: Path | None = None,
    user: str | None = None,
) -> None:
    """Run until interrupted. With TLS and no certificate given, the self-signed one of the data folder.

    With `user` (and started as root), root is dropped to that user once the socket listens, the
    TLS key is read and the database's connections are open: what serves requests never has it.
    """
    ssl: dict[str, str] = {}
    if web.tls:
        if cert is None or key is None:
            cert, key = self_signed(web.settings.web.data_dir, listen.host)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    web.allowed_hosts = allowed_hosts(web.settings.web.allowed_hosts, listen.host, cert)
    config = uvicorn.Config(
        create_app(web),
        host=listen.host,
        port=listen.port,
        log_level="info",
        access_log=False,  # request lines carry ?next= and tokens' failures; the audit log is what counts
        proxy_headers=False,  # the client address (login limits) is the peer's, never a header's
        server_header=False,
        **ssl,  # type: ignore[arg-type]
    )
    sock = _listening_socket(listen)
    config.load()  # the TLS key is read now, while it may still be root's alone
    if user is not None:
        entry = user_entry(user)
        if entry is not None and entry.pw_uid != 0:
            hold_connections(web.db)
            preload()
            drop_privileges(user)
    scheme = "https" if web.tls else "http"
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    log.info("dynapot web on %s://%s:%d/ (uid %d)", scheme, host, listen.port, os.geteuid())
    uvicorn.Server(config).run(sockets=[sock])


def preload() -> None:
    """Load now what is otherwise loaded at first use, from files the unprivileged user may not
    read (the interpreter's own library may be root's alone): codecs, apprise's plugins, the
    alert module."""
    import codecs

    for name in ("unicode_escape", "raw_unicode_escape", "idna", "punycode", "latin_1", "ascii", "utf_8"):
        codecs.lookup(name)
    import dynapot.analysis.alerts  # noqa: F401 - the test alert's
    from dynapot.daemon.settings_store import mask_url

    mask_url("json://localhost/")  # apprise loads its plugins on first use


def _listening_socket(listen: Listen) -> socket.socket:
    """The server's socket, bound now (before root is dropped); ListenError when it cannot be."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    try:
        sock = socket.create_server((listen.host, listen.port), family=family, backlog=2048)
    except OSError as exc:
        raise ListenError(f"cannot listen on {listen.host}:{listen.port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock
