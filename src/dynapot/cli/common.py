"""What every command module shares: the Context, --db/--config, consoles, errors, parameter types.

`command_options` gives a command `--db URL` (else DYNAPOT_DB, else the settings file) and
`--config FILE` (else DYNAPOT_CONFIG), builds the `Context`, and turns the errors a user can
fix into one clear message with exit status 1 (click's usage errors exit with 2).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from dynapot.config import ConfigError, Settings, load_settings
from dynapot.db import Database, DatabaseError, open_database

__all__ = [
    "EXISTING_FILE",
    "WHEN",
    "Context",
    "command_options",
    "err_console",
    "output_option",
    "parse_when",
    "print_wide",
]

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)

#: A file that must exist (click says so, exit status 2, before the command runs).
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def print_wide(renderable: Any) -> None:
    """Print to standard output; wide when it is a file or pipe, so that tables are not folded."""
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(renderable)


class Context:
    """What every command receives: settings, and the database opened on first use."""

    def __init__(self, settings: Settings, settings_path: Path | None = None) -> None:
        self.settings = settings
        self.settings_path = settings_path
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = open_database(self.settings.database_url)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def _user_errors() -> tuple[type[BaseException], ...]:
    # Imported lazily: each module is only loaded by the commands that need it.
    from dynapot.discovery.active import ActiveScanError
    from dynapot.discovery.nmap_xml import NmapXmlError
    from dynapot.discovery.p0f import P0fDatabaseError
    from dynapot.discovery.p0f_log import P0fLogError
    from dynapot.honeyd import HoneydConfigError
    from dynapot.personality.osdb import OsDbError

    return (
        ConfigError,
        DatabaseError,
        ActiveScanError,
        NmapXmlError,
        P0fDatabaseError,
        P0fLogError,
        OsDbError,
        HoneydConfigError,
    )


def command_options(func: F | None = None, *, settings_option: str = "--config") -> Any:
    """Add --db and the settings-file option, build the Context, turn known errors into clean exits.

    The settings option is --config everywhere except where a command needs that name for its
    own file (the sensor's honeyd configuration): there it is --settings.
    """

    def decorate(func: F) -> F:
        @click.option("--db", "db_url", metavar="URL", help="SQLAlchemy database URL (overrides DYNAPOT_DB).")
        @click.option(
            settings_option,
            "config_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Settings file (TOML; overrides DYNAPOT_CONFIG).",
        )
        @functools.wraps(func)
        def wrapper(*args: Any, db_url: str | None, config_path: Path | None, **kwargs: Any) -> Any:
            context: Context | None = None
            try:
                overrides = {"database_url": db_url} if db_url else {}
                context = Context(load_settings(config_path, overrides=overrides), config_path)
                return func(context, *args, **kwargs)
            except _user_errors() as exc:
                raise click.ClickException(str(exc)) from None
            except ValueError as exc:
                raise click.ClickException(str(exc)) from None
            finally:
                if context is not None:
                    context.close()

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def output_option(func: F) -> F:
    """-o/--output FILE: where a command writes its document instead of standard output."""
    return click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write here (default: stdout).",
    )(func)


# --- moments: a duration back from now, or an ISO 8601 time ------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A moment from a duration back from `now` or an ISO 8601 time; ValueError if it is neither."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
        if seconds > 100 * 365 * 86_400:
            raise ValueError(f"{text!r} reaches back more than a century")
        return now - timedelta(seconds=seconds)
    if text.strip().lower() == "now":
        return now
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 24h, 7d) nor an ISO 8601 time (2026-11-27T10:00)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class _When(click.ParamType):
    name = "DURATION|ISO"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


#: "90m", "24h", "7d" back from now, or "2026-11-27T10:00" (UTC unless it names its zone).
WHEN = _When()
