"""What every command module shares: the Context, --db/--config, consoles, errors, parameter types.

The rule every command keeps: a mistake in what the user gave (an option, an argument, a
setting, an environment variable, a file named on the command line) is one line on standard
error that names it the way the user gave it, shows the value unless it may hold a secret,
and says what is allowed; the exit status is 2 and nothing has been written. A command checks
all it can before it opens the database, and opens it for what it does (`Access`): reading
commands find an existing database and cannot write to it; only commands that store a first
scan (and `db upgrade`) make a new one, and they say so. Failures while running (a database
server that does not answer, nmap failing) exit with status 1.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from dynapot.config import ConfigError, Settings, load_settings, parse_address_range, parse_network
from dynapot.db import Access, Database, DatabaseError, DatabaseMissing, DatabaseUrlError, open_database
from dynapot.db.engine import parse_url
from dynapot.textsafe import for_display

__all__ = [
    "ADDRESS_RANGE",
    "EXISTING_FILE",
    "INTERFACE",
    "IPV4_ADDRESS",
    "NETWORK",
    "OUTPUT_FILE",
    "WHEN",
    "Context",
    "SettingOption",
    "UserError",
    "cells",
    "command_options",
    "err_console",
    "interface_problem",
    "output_option",
    "parse_when",
    "print_wide",
    "require_interface",
    "seconds_option",
    "setting_default",
    "setting_option",
    "shown",
    "store_observations",
]

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True)

#: A file that must exist (click says so, exit status 2, before the command runs).
EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class UserError(click.ClickException):
    """A mistake in what the user gave (option, argument, setting, variable, file): exit status 2."""

    exit_code = 2


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def shown(value: Any) -> str:
    """A value in a line the CLI prints: control characters and terminal escapes shown as \\xNN.

    Whatever came from the wire (a host name, a banner, a login) may hold escape sequences.
    """
    return "" if value is None else for_display(value)


def cells(*values: Any) -> list[Text]:
    """A table row of `shown` cells, never read as rich markup (a "[bold]" stays as typed)."""
    return [Text(shown(value)) for value in values]


def print_wide(renderable: Any) -> None:
    """Print to standard output; wide when it is a file or pipe, so that tables are not folded."""
    console = Console()
    (console if console.is_terminal else Console(width=200)).print(renderable)


def setting_default(dotted: str) -> str:
    """What an option that overrides the setting `dotted` defaults to, for --help."""
    value = Settings().value(dotted)
    if isinstance(value, bool):
        value = "on" if value else "off"
    return f"setting {dotted}, {value if value is not None else 'unset'}"


class SettingOption(click.Option):
    """An option that overrides a setting: validated with the settings, named by its option in errors.

    `command_options` takes its value (when given) into the settings; the command reads the
    setting, never the option. --help shows the setting and its default.
    """

    def __init__(self, *args: Any, setting: str, **kwargs: Any) -> None:
        kwargs.setdefault("show_default", setting_default(setting))
        super().__init__(*args, **kwargs)
        self.setting = setting


def setting_option(*decls: str, setting: str, **kwargs: Any) -> Callable[[F], F]:
    """`click.option` for an option that overrides the setting `setting` (see SettingOption)."""
    return click.option(*decls, cls=SettingOption, setting=setting, **kwargs)


class Context:
    """What every command receives: settings, and the database opened for what the command does."""

    def __init__(self, settings: Settings, settings_path: Path | None = None) -> None:
        self.settings = settings
        self.settings_path = settings_path
        self._db: Database | None = None

    def database(self, access: Access) -> Database:
        """The database, opened once for `access`; a missing one is a user error (status 2)."""
        if self._db is None:
            self._db = self._open(access)
        elif access is not Access.READ and self._db.read_only:
            raise RuntimeError("the database was opened to read; open it for writing first")
        return self._db

    def _open(self, access: Access) -> Database:
        named = self.settings.describe("database_url")
        try:
            database = open_database(self.settings.database_url, access=access)
        except (DatabaseUrlError, DatabaseMissing) as exc:
            raise UserError(f"{named}: {exc.reason}") from None
        except DatabaseError as exc:
            raise click.ClickException(f"{named}: {exc.reason}") from None
        if database.created:
            click.echo(f"created a new database: {database.url}", err=True)
        return database

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


def _input_errors() -> tuple[type[BaseException], ...]:
    """Errors in a file or value the user gave: exit status 2 (imported lazily, per command)."""
    from dynapot.discovery.nmap_xml import NmapXmlError
    from dynapot.discovery.p0f import P0fDatabaseError
    from dynapot.discovery.p0f_log import P0fLogError
    from dynapot.discovery.pcap import PcapError
    from dynapot.honeyd import HoneydConfigError
    from dynapot.personality.osdb import OsDbError

    return (
        ConfigError,
        DatabaseUrlError,
        DatabaseMissing,
        NmapXmlError,
        P0fDatabaseError,
        P0fLogError,
        PcapError,
        OsDbError,
        HoneydConfigError,
    )


def _failures() -> tuple[type[BaseException], ...]:
    """Errors while running, the input being fine: exit status 1."""
    from dynapot.discovery.active import ActiveScanError

    return (DatabaseError, ActiveScanError, ValueError)


def _settings_overrides(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Pop the given SettingOption values: (nested overrides, dotted setting -> option name)."""
    overrides: dict[str, Any] = {}
    names: dict[str, str] = {}
    for param in click.get_current_context().command.params:
        if not isinstance(param, SettingOption):
            continue
        value = kwargs.pop(str(param.name))
        if value is None:
            continue
        *sections, field = param.setting.split(".")
        node = overrides
        for section in sections:
            node = node.setdefault(section, {})
        node[field] = value
        long_names = [opt for opt in param.opts if opt.startswith("--")]
        names[param.setting] = (long_names or param.opts)[-1]
    return overrides, names


def command_options(func: F | None = None, *, settings_option: str = "--config") -> Any:
    """Add --db and the settings-file option, build the Context, turn known errors into clean exits.

    The settings option is --config everywhere except where a command needs that name for its
    own file (the sensor's honeyd configuration): there it is --settings. The command's
    SettingOptions go into the settings, validated with them: a bad value is named by its option.
    """

    def decorate(func: F) -> F:
        @click.option(
            "--db",
            "db_url",
            metavar="URL",
            help="SQLAlchemy database URL (overrides DYNAPOT_DB).",
            show_default="DYNAPOT_DB, else database.url in the settings, else sqlite:////var/lib/dynapot/dynapot.db",
        )
        @click.option(
            settings_option,
            "config_path",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Settings file (TOML; overrides DYNAPOT_CONFIG).",
            show_default="DYNAPOT_CONFIG, else none",
        )
        @functools.wraps(func)
        def wrapper(*args: Any, db_url: str | None, config_path: Path | None, **kwargs: Any) -> Any:
            context: Context | None = None
            try:
                overrides, names = _settings_overrides(kwargs)
                if db_url:
                    overrides["database_url"] = db_url
                    names["database_url"] = "--db"
                settings = load_settings(config_path, overrides=overrides, override_names=names)
                try:
                    parse_url(settings.database_url)
                except DatabaseUrlError as exc:
                    raise UserError(f"{settings.describe('database_url')}: {exc.reason}") from None
                context = Context(settings, config_path)
                return func(context, *args, **kwargs)
            except _input_errors() as exc:
                raise UserError(_one_line(str(exc))) from None
            except _failures() as exc:
                raise click.ClickException(_one_line(str(exc))) from None
            finally:
                if context is not None:
                    context.close()

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


# --- parameter types: a bad value is refused by click (status 2) before the command runs -------


class _Checked(click.ParamType):
    """A parameter whose text a function turns into a value, or refuses with ValueError."""

    def __init__(self, name: str, check: Callable[[str], Any]) -> None:
        self.name = name
        self._check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self._check(value)
        except ValueError as exc:
            self.fail(_one_line(str(exc)), param, ctx)


def _ipv4_address(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def _address_range(text: str) -> str:
    parse_address_range(text)
    return text


def interface_problem(name: str) -> str | None:
    """Why `name` is not a network interface here; None when it is one."""
    try:
        socket.if_nametoindex(name)
    except (OSError, ValueError):
        present = ", ".join(sorted(n for _, n in socket.if_nameindex()))
        return f"no network interface {name!r} here (there are: {present})"
    return None


def require_interface(settings: Settings, dotted: str) -> None:
    """Refuse (status 2) when the setting `dotted` names no network interface here."""
    problem = interface_problem(str(settings.value(dotted)))
    if problem:
        raise UserError(f"{settings.describe(dotted)}: {problem}")


def _interface(name: str) -> str:
    problem = interface_problem(name)
    if problem:
        raise ValueError(problem)
    return name


def _output_file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise ValueError(f"{text!r} is a folder; name a file")
    folder = path.parent
    if not folder.is_dir():
        raise ValueError(f"{text!r}: the folder {str(folder)!r} does not exist")
    return path


#: A strict IPv4 network: 198.18.0.0/24 (not 198.18.0.5/24, which has host bits).
NETWORK = _Checked("CIDR", lambda text: parse_network(text))
IPV4_ADDRESS = _Checked("ADDRESS", _ipv4_address)
#: One address, a range a-b or a CIDR network.
ADDRESS_RANGE = _Checked("RANGE", _address_range)
#: A network interface that exists in this network namespace.
INTERFACE = _Checked("IFACE", _interface)
#: A file to write: its folder must exist (checked before anything is done or recorded).
OUTPUT_FILE = _Checked("FILE", _output_file)


def seconds_option(*, until: str) -> Callable[[F], F]:
    """--seconds: how long a long-running command runs; by default until `until` (a signal)."""
    positive = click.FloatRange(min=0, min_open=True)
    return click.option(
        "--seconds", type=positive, help="Stop after this long.", show_default=f"until {until}"
    )


def output_option(func: F) -> F:
    """-o/--output FILE: where a command writes its document instead of standard output."""
    return click.option(
        "-o", "--output", type=OUTPUT_FILE, help="Write here.", show_default="standard output"
    )(func)


# --- storing what discovery learned -------------------------------------------------------------


def store_observations(ctx: Context, observations: Sequence[Any], *, source: str) -> Any:
    """Record observations in the database (made if missing); say so when expiry will delete them.

    Hosts last seen longer ago than expiry.hosts (from an old capture, log or scan) are stored,
    but the next expiry run (`dynapot expire`, or the daemon's) deletes them: never silently.
    """
    from dynapot.inventory import expiring_hosts, record_observations

    database = ctx.database(Access.CREATE)
    stats = record_observations(database, observations, ctx.settings.discovery.fusion)
    stored = {obs.ip for obs in observations if obs.alive}
    expiring = expiring_hosts(database, ctx.settings.expiry, stored)
    if expiring:
        click.echo(
            f"warning: {source}: {len(expiring)} of the {len(stored)} hosts stored were last seen "
            f"longer ago than expiry.hosts ({ctx.settings.expiry.hosts:g} days; the latest on "
            f"{max(expiring.values()):%Y-%m-%d}): the next expiry deletes them",
            err=True,
        )
    return stats


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


#: "90m", "24h", "7d" back from now, or "2026-11-27T10:00" (UTC unless it names its zone).
WHEN = _Checked("DURATION|ISO", parse_when)
