"""Serving the web interface: uvicorn on one address, over TLS unless told otherwise."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from dynapot.web.app import create_app
from dynapot.web.context import WebContext
from dynapot.web.hosts import allowed_hosts
from dynapot.web.tls import self_signed

__all__ = ["Listen", "parse_listen", "serve"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listen:
    host: str
    port: int


def parse_listen(text: str) -> Listen:
    """`127.0.0.1:8443`, `[::1]:8443` or `localhost:8443`; ValueError says what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8443)")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: the port must be 1-65535")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IP address (or localhost)") from None
    return Listen(host, port)


def serve(web: WebContext, listen: Listen, *, cert: Path | None = None, key: Path | None = None) -> None:
    """Run until interrupted. With TLS and no certificate given, the self-signed one of the data folder."""
    ssl: dict[str, str] = {}
    if web.tls:
        if cert is None or key is None:
            cert, key = self_signed(web.settings.web.data_dir, listen.host)
        ssl = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    web.allowed_hosts = allowed_hosts(web.settings.web.allowed_hosts, listen.host, cert)
    scheme = "https" if web.tls else "http"
    host = f"[{listen.host}]" if ":" in listen.host else listen.host
    log.info("dynapot web on %s://%s:%d/", scheme, host, listen.port)
    uvicorn.run(
        create_app(web),
        host=listen.host,
        port=listen.port,
        log_level="info",
        access_log=False,  # request lines carry ?next= and tokens' failures; the audit log is what counts
        proxy_headers=False,  # the client address (login limits) is the peer's, never a header's
        server_header=False,
        **ssl,  # type: ignore[arg-type]
    )
