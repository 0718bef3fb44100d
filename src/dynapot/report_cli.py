"""`dynapot report` and `dynapot findings`: reports over the honeypot log, correlation on demand.

`register(main, command_options)` adds both to the `dynapot` group (the pattern of
dynapot.discovery.cli). Times are a duration back from now ("90m", "24h", "7d") or an
ISO 8601 moment ("2026-11-27T10:00", UTC unless it names its zone).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

__all__ = ["parse_when", "register"]

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


WHEN = _When()


def _write(output: Path | None, text: str) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    tmp = output.with_name(output.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)  # atomic: a reader never sees half a report
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {output}: {exc}") from None


def _correlation_settings(settings: Any) -> Any:
    from dynapot.config import CorrelationSettings

    # Settings grows a [correlation] section; until it does, the defaults apply.
    return getattr(settings, "correlation", None) or CorrelationSettings()


def register(main: click.Group, command_options: Any) -> None:
    """Add `report` and `findings` to the `dynapot` command group."""

    @main.command("report")
    @click.option(
        "--since", type=WHEN, default="24h", show_default=True, help="Start: duration back or ISO time."
    )
    @click.option("--until", type=WHEN, help="End (exclusive): duration back or ISO time; default now.")
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json", "csv", "html"]),
        default="text",
        show_default=True,
        help="csv: one flat table, a `section` column first.",
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write here (default: stdout).",
    )
    @click.option(
        "--limit", type=click.IntRange(1, 10_000), default=50, show_default=True, help="Rows per top list."
    )
    @click.option(
        "--rows",
        type=click.IntRange(1, 100_000),
        default=500,
        show_default=True,
        help="Latest credentials, commands, findings and alerts shown.",
    )
    @command_options
    def report_command(
        ctx: Any,
        since: datetime,
        until: datetime | None,
        fmt: str,
        output: Path | None,
        limit: int,
        rows: int,
    ) -> None:
        """Who touched which honeypot, with what, and what it meant, over a period."""
        from dynapot.analysis.report import build_report, render

        data = build_report(ctx.db, since, until, limit=limit, rows=rows)
        _write(output, render(data, fmt))
        if output is not None:
            click.echo(f"wrote the {fmt} report ({data.totals['events']} events) to {output}", err=True)

    @main.command("findings")
    @click.option(
        "--since", type=WHEN, default="24h", show_default=True, help="Start: duration back or ISO time."
    )
    @click.option("--until", type=WHEN, help="End (exclusive): duration back or ISO time; default now.")
    @click.option("--json", "as_json", is_flag=True, help="One JSON object per finding and line.")
    @click.option("--no-store", is_flag=True, help="Only show them; do not upsert them into the database.")
    @command_options
    def findings_command(
        ctx: Any, since: datetime, until: datetime | None, as_json: bool, no_store: bool
    ) -> None:
        """Correlate the stored events (scans, brute force, worms) and store the findings."""
        from dynapot.analysis.findings import store_findings
        from dynapot.analysis.stored import correlate_stored

        settings = _correlation_settings(ctx.settings)
        if until is not None and until <= since:
            raise click.ClickException("--until must be later than --since")
        findings = correlate_stored(ctx.db, since, until, settings)
        if as_json:
            for finding in findings:
                click.echo(json.dumps(finding.as_dict(), sort_keys=True))
        else:
            from rich.console import Console
            from rich.table import Table
            from rich.text import Text

            from dynapot.analysis.report.render_text import clean

            table = Table("risk", "kind", "first seen", "last seen", "events", "summary", "key")
            for f in findings:
                cells = [
                    f.risk,
                    f.kind,
                    f.first_seen.isoformat(timespec="seconds"),
                    f.last_seen.isoformat(timespec="seconds"),
                    str(f.event_count),
                    f.summary,
                    f.key,
                ]
                table.add_row(*(Text(clean(cell)) for cell in cells))
            console = Console()
            (console if console.is_terminal else Console(width=200)).print(table)
        if not no_store:
            counts = store_findings(ctx.db, findings, max_event_ids=settings.max_event_ids)
            click.echo(f"stored: {counts['added']} findings added, {counts['updated']} updated", err=True)
