"""What every request of the web interface shares: the database, the settings, the login limiter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dynapot.config import ConfigError, Settings, load_settings
from dynapot.db import Database
from dynapot.web.hosts import allowed_hosts
from dynapot.web.security import LoginLimiter

__all__ = ["WebContext"]


@dataclass
class WebContext:
    """The application's state (`app.state.web`): made by `create_app`, never at import."""

    db: Database
    settings: Settings
    settings_path: Path | None = None  # the file the daemon reads; None: settings cannot be changed
    tls: bool = True
    #: Changes go to the running daemon, which writes the file as root (`daemon.settings_requests`).
    settings_by_daemon: bool = False
    limiter: LoginLimiter = field(init=False)
    #: Host header names answered (`web.hosts`); `serve` adds the listen address and the certificate's.
    allowed_hosts: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = LoginLimiter(self.settings.web.login_attempts_per_minute)
        self.allowed_hosts = allowed_hosts(self.settings.web.allowed_hosts)

    @property
    def cookie_name(self) -> str:
        # __Host-: the browser keeps it only when Secure, for this host and path /.
        return "__Host-dynapot" if self.tls else "dynapot_session"

    def current_settings(self) -> Settings:
        """The settings as the daemon reads them now: the file again (it may have changed since)."""
        if self.settings_path is None:
            return self.settings
        try:
            return load_settings(self.settings_path)
        except ConfigError:
            return self.settings  # a file broken by hand: show what we started with
