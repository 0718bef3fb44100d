"""The time range a page or an API call looks at: a preset, or from/to, validated field by field.

`parse_period(preset, since, until)` accepts a preset (`PRESETS`: last hour, day, week, 30
days), or `since`/`until` as an ISO 8601 time (what a browser's datetime-local field sends,
UTC unless it names its zone) or a duration back from now (90m, 24h, 7d). A bad value is
refused with one message per field (`PeriodRefused.errors`: field -> message), which the pages
show beside the field and the API returns as a 422; nothing else is raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["DEFAULT_PRESET", "MAX_SPAN", "PRESETS", "Period", "PeriodRefused", "parse_period"]

#: name -> how far back from now.
PRESETS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PRESET_LABELS = {"1h": "last hour", "24h": "last day", "7d": "last week", "30d": "last 30 days"}
DEFAULT_PRESET = "24h"
#: The longest period a page or an API call reports on (the CLI's report goes further).
MAX_SPAN = timedelta(days=366)
MAX_TEXT = 64  # characters of a submitted time looked at
_DURATION = re.compile(r"^(\d{1,6})(m|h|d|w)$", re.IGNORECASE)
_UNITS = {"m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Period:
    """[since, until) in UTC, and the preset it came from (None: from/to given)."""

    since: datetime
    until: datetime
    preset: str | None = None

    def query(self) -> dict[str, str]:
        """The period as query parameters that give it back (absolute times, to the second)."""
        return {"since": _iso(self.since), "until": _iso(self.until)}


class PeriodRefused(ValueError):
    """A period that cannot be used: `errors` maps a field (preset, since, until) to why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in errors.items()))
        self.errors = errors


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _moment(text: str, now: datetime) -> datetime:
    text = text.strip()
    if len(text) > MAX_TEXT:
        raise ValueError("too long to be a time")
    if text.lower() == "now":
        return now
    match = _DURATION.match(text)
    if match:
        seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
        if seconds > (now - _EARLIEST).total_seconds():
            raise ValueError("before 1970")
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "not a time: give 2026-12-07T05:00 (UTC) or a duration back (90m, 24h, 7d)"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment < _EARLIEST:
        raise ValueError("before 1970")
    return moment


def parse_period(
    preset: str | None = None,
    since: str | None = None,
    until: str | None = None,
    *,
    now: datetime | None = None,
) -> Period:
    """The period asked for: `preset`, or `since` (required without a preset) and `until` (now)."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    since, until = (since or "").strip(), (until or "").strip()
    if preset and not (since or until):
        if preset not in PRESETS:
            raise PeriodRefused({"preset": f"unknown preset; choose one of {', '.join(PRESETS)}"})
        return Period(now - PRESETS[preset], now, preset)
    if not since and not until:
        return Period(now - PRESETS[DEFAULT_PRESET], now, DEFAULT_PRESET)
    errors: dict[str, str] = {}
    start = end = now
    if not since:
        errors["since"] = "give a start time"
    else:
        try:
            start = _moment(since, now)
        except ValueError as exc:
            errors["since"] = str(exc)
    if until:
        try:
            end = _moment(until, now)
        except ValueError as exc:
            errors["until"] = str(exc)
    if not errors:
        if end <= start:
            errors["until"] = "must be later than the start"
        elif end - start > MAX_SPAN:
            errors["since"] = f"the period is longer than {MAX_SPAN.days} days"
    if errors:
        raise PeriodRefused(errors)
    return Period(start, end)
