"""Changing the settings file the daemon reads: validated as a whole, written atomically, audited.

The admin's changes arrive as text per field (`EDITABLE`, dotted names). They are merged into
the file as it is (tomlkit keeps its comments and the settings the page does not show), the
result is validated with the same pydantic `Settings` the daemon loads, and only then is the
file replaced in one step (same permissions). A refused change leaves the file untouched and
comes back as {field: reason}, for the page to show beside the field. The daemon notices the
new file by its modification time (`Daemon.reload_policy`).

Alert URLs may hold passwords: they are never shown or audited whole, only as apprise's
masked form; the page submits new URLs only when the admin types them.
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import TOMLKitError

from dynapot.config import ConfigError, NetworkSettings, Settings, alert_url_problem
from dynapot.files import write_atomically
from dynapot.textsafe import for_display

__all__ = [
    "EDITABLE",
    "RESTART",
    "Change",
    "SettingsRefused",
    "current_values",
    "format_networks",
    "mask_url",
    "parse_networks",
    "update_settings",
]


@dataclass(frozen=True)
class Field:
    """A setting the page and the API edit: its label, its input, and whether it applies live."""

    dotted: str
    label: str
    kind: str  # "choice", "int", "float", "bool", "networks", "urls"
    choices: tuple[str, ...] = ()
    help: str = ""


EDITABLE: tuple[Field, ...] = (
    Field("discovery.mode", "Discovery mode", "choice", ("active", "passive", "hybrid")),
    Field("discovery.active.parallel", "N: nmap scans at once", "int"),
    Field("discovery.active.interval", "D: seconds between batches", "float"),
    Field("discovery.active.polite", "Polite scanning", "bool"),
    Field(
        "networks",
        "Networks and exclusions",
        "networks",
        help="one network a line: CIDR [gateway=ADDRESS] [exclude=RANGE,RANGE,...]",
    ),
    Field("planner.fill_ratio", "Planner fill ratio (0-1)", "float"),
    Field(
        "planner.apply",
        "New plans",
        "choice",
        ("auto", "hold"),
        help="auto: the daemon deploys each new plan; hold: it waits for an admin's Apply on the plan page",
    ),
    Field("expiry.hosts", "Expire hosts after (days)", "float"),
    Field("expiry.ports", "Expire ports after (days)", "float"),
    Field("expiry.honeypot_events", "Expire events after (days)", "float"),
    Field("expiry.sessions", "Expire sessions after (days)", "float"),
    Field("expiry.findings", "Expire findings after (days)", "float"),
    Field("expiry.alerts", "Expire alerts after (days)", "float"),
    Field("alerts.urls", "Alert URLs", "urls", help="apprise URLs, one a line; shown masked"),
)
BY_NAME = {field.dotted: field for field in EDITABLE}
#: Settings the running daemon takes only when it restarts (none now: all apply within seconds).
RESTART: frozenset[str] = frozenset()

_lock = threading.Lock()  # one read-modify-write of the file at a time in this process


class SettingsRefused(ValueError):
    """The change does not validate; `errors` maps each field (dotted) to its reason."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Change:
    """One setting changed: old and new value as shown (secrets masked)."""

    dotted: str
    old: str
    new: str


def mask_url(url: str) -> str:
    """An alert URL with its secrets hidden (apprise's privacy form), or only its scheme."""
    if alert_url_problem(url) is None:
        import apprise

        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is not None:
            return for_display(plugin.url(privacy=True))
    return for_display(url.partition("://")[0][:20] + "://...")


def format_networks(networks: tuple[NetworkSettings, ...]) -> str:
    """The networks as the page's text: one a line, CIDR [gateway=...] [exclude=...]."""
    lines = []
    for net in networks:
        parts = [str(net.cidr)]
        if net.gateway is not None:
            parts.append(f"gateway={net.gateway}")
        if net.exclude:
            parts.append("exclude=" + ",".join(net.exclude))
        lines.append(" ".join(parts))
    return "\n".join(lines)


def parse_networks(text: str) -> list[dict[str, Any]]:
    """The page's networks text as the settings file's [[networks]] tables; ValueError says where."""
    networks: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        entry: dict[str, Any] = {"cidr": words[0]}
        for word in words[1:]:
            key, sep, value = word.partition("=")
            if not sep or key not in ("gateway", "exclude") or not value:
                raise ValueError(
                    f"line {number}: {for_display(word[:60])!r} is neither gateway=... nor exclude=..."
                )
            entry[key] = value if key == "gateway" else [v for v in value.split(",") if v]
        networks.append(entry)
    return networks


def current_values(settings: Settings) -> dict[str, Any]:
    """Each editable setting's value as the page shows it (URLs masked, networks as text)."""
    values: dict[str, Any] = {}
    for field in EDITABLE:
        value = settings.value(field.dotted)
        if field.kind == "networks":
            value = format_networks(value)
        elif field.kind == "urls":
            value = [mask_url(url) for url in value]
        values[field.dotted] = value
    return values


def _shown(field: Field, value: Any) -> str:
    if field.kind == "urls":
        return "[" + ", ".join(mask_url(url) for url in value) + "]"
    if field.kind == "networks":
        return format_networks(value).replace("\n", "; ")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _file_data(document: tomlkit.TOMLDocument) -> dict[str, Any]:
    """The file's values as the model reads them ([database] url is the model's database_url)."""
    data = document.unwrap()
    database = data.pop("database", None)
    if isinstance(database, dict) and "url" in database:
        data["database_url"] = database["url"]
    return data


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, name = dotted.split(".")
    node = data
    for section in sections:
        child = node.get(section)
        if not isinstance(child, dict):
            child = node[section] = {}
        node = child
    node[name] = value


def _as_input(field: Field, text: Any) -> Any:
    """The form's text as what the model validates (pydantic turns "8" into 8; a bool is a checkbox)."""
    if field.kind == "bool":
        return text if isinstance(text, bool) else str(text).lower() in ("on", "true", "1", "yes")
    if field.kind == "networks":
        return parse_networks(str(text)) if isinstance(text, str) else text
    if field.kind == "urls":
        if isinstance(text, str):
            return tuple(line.strip() for line in text.splitlines() if line.strip())
        return tuple(text)
    return text


def _field_of(loc: tuple[Any, ...]) -> str:
    names = [str(part) for part in loc if not isinstance(part, int)]
    for end in range(len(names), 0, -1):
        if ".".join(names[:end]) in BY_NAME:
            return ".".join(names[:end])
    return ".".join(names) or "settings"


def _reason(item: Any) -> str:
    reason: str = item["msg"].removeprefix("Value error, ")
    return for_display(reason.replace("Input should be", "must be"))


def _write_document(path: Path, document: tomlkit.TOMLDocument, changes: dict[str, Any]) -> None:
    for dotted, value in changes.items():
        if dotted == "networks":
            tables = tomlkit.aot()
            for net in value:
                table = tomlkit.table()
                table["cidr"] = str(net.cidr)
                if net.gateway is not None:
                    table["gateway"] = str(net.gateway)
                if net.exclude:
                    table["exclude"] = list(net.exclude)
                tables.append(table)
            document["networks"] = tables
            continue
        *sections, name = dotted.split(".")
        node: Any = document
        for section in sections:
            if section not in node:
                node[section] = tomlkit.table()
            node = node[section]
        node[name] = list(value) if isinstance(value, tuple) else value
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o600
    write_atomically(path, tomlkit.dumps(document), mode)


def update_settings(path: Path, submitted: Mapping[str, Any]) -> list[Change]:
    """Apply `submitted` ({dotted: text}) to the settings file at `path`; the changes made.

    Fields not in `EDITABLE` are refused; a field whose value is unchanged is not written.
    SettingsRefused (field -> reason) when the result does not validate: the file stays as it was.
    """
    unknown = [name for name in submitted if name not in BY_NAME]
    if unknown:
        raise SettingsRefused(
            {for_display(name[:80]): "not a setting that can be changed here" for name in unknown}
        )
    with _lock:
        try:
            document = (
                tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
            )
        except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
            raise SettingsRefused(
                {"settings": f"cannot read {path}: {for_display(str(exc))[:200]}"}
            ) from None
        before_data = _file_data(document)
        try:
            before = Settings.model_validate(before_data)
        except ValidationError:
            raise SettingsRefused(
                {"settings": f"{path} does not validate now; fix it by hand first"}
            ) from None
        candidate = _file_data(document)
        errors: dict[str, str] = {}
        for dotted, text in submitted.items():
            try:
                _set(candidate, dotted, _as_input(BY_NAME[dotted], text))
            except ValueError as exc:
                errors[dotted] = for_display(str(exc))
        if errors:
            raise SettingsRefused(errors)
        try:
            after = Settings.model_validate(candidate)
        except (ValidationError, ConfigError) as exc:
            if isinstance(exc, ConfigError):
                raise SettingsRefused({"networks": for_display(str(exc))}) from None
            for item in exc.errors():
                errors.setdefault(_field_of(item["loc"]), _reason(item))
            raise SettingsRefused(errors) from None
        new_values = {
            dotted: after.value(dotted) for dotted in submitted if after.value(dotted) != before.value(dotted)
        }
        if new_values:
            try:
                _write_document(path, document, new_values)
            except OSError as exc:  # e.g. the web child's account may not write the settings folder
                reason = f"cannot write {path}: {for_display(exc.strerror or str(exc))[:200]}"
                raise SettingsRefused({"settings": reason}) from None
    return [
        Change(dotted, _shown(BY_NAME[dotted], before.value(dotted)), _shown(BY_NAME[dotted], value))
        for dotted, value in new_values.items()
    ]
