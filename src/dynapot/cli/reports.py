"""`dynapot report` and `dynapot findings`: reports over the honeypot log, correlation on demand.

Times are a duration back from now ("90m", "24h", "7d") or an ISO 8601 moment
("2026-11-27T10:00", UTC unless it names its zone): `common.WHEN`. Both only read the
database; `findings --store` also records what it found.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from dynapot.cli.common import WHEN, Context, UserError, cells, command_options, output_option, print_wide
from dynapot.db import Access
from dynapot.files import write_atomically

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `report` and `findings` to the `dynapot` group."""
    main.add_command(report_command)
    main.add_command(findings_command)


def _write(output: Path | None, text: str) -> None:
    """To standard output, or to `output` through a temporary file: a reader never sees half a report."""
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        write_atomically(output, text)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc}") from None


def _period_options(func: Any) -> Any:
    """--since and --until, the period both commands look at."""
    func = click.option(
        "--until", type=WHEN, help="End (exclusive): duration back or ISO time.", show_default="now"
    )(func)
    return click.option(
        "--since", type=WHEN, default="24h", show_default=True, help="Start: duration back or ISO time."
    )(func)


@click.command("report")
@_period_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "csv", "html"]),
    default="text",
    show_default=True,
    help="csv: one flat table, a `section` column first.",
)
@output_option
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
@click.option(
    "--refresh",
    is_flag=True,
    help="First sum the events stored since into the hourly roll-up (the daemon does it as it runs; "
    "the report is the same without, only slower over a big log).",
)
@command_options
def report_command(
    ctx: Context,
    since: datetime,
    until: datetime | None,
    fmt: str,
    output: Path | None,
    limit: int,
    rows: int,
    refresh: bool,
) -> None:
    """Who touched which honeypot, with what, and what it meant, over a period."""
    from dynapot.analysis.report import build_report, render
    from dynapot.analysis.report.rollup import refresh_rollup

    _check_period(since, until)
    if refresh:
        summed = refresh_rollup(ctx.database(Access.WRITE))
        click.echo(f"roll-up: {summed} new events summed", err=True)
    data = build_report(ctx.database(Access.READ), since, until, limit=limit, rows=rows)
    _write(output, render(data, fmt))
    if output is not None:
        click.echo(f"wrote the {fmt} report ({data.totals['events']} events) to {output}", err=True)


def _check_period(since: datetime, until: datetime | None) -> None:
    if until is not None and until <= since:
        raise UserError(
            f"--until {until:%Y-%m-%dT%H:%M:%S} is not later than --since {since:%Y-%m-%dT%H:%M:%S}: "
            "the period is empty"
        )


@click.command("findings")
@_period_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per finding and line.")
@click.option(
    "--store/--no-store",
    default=False,
    help="Also record the findings in the database (added, or updated when already there).",
)
@command_options
def findings_command(
    ctx: Context, since: datetime, until: datetime | None, as_json: bool, store: bool
) -> None:
    """Correlate the stored events (scans, brute force, worms) and show the findings."""
    from dynapot.analysis.findings import store_findings
    from dynapot.analysis.stored import correlate_stored

    settings = ctx.settings.correlation
    _check_period(since, until)
    database = ctx.database(Access.WRITE if store else Access.READ)
    findings = correlate_stored(database, since, until, settings)
    if as_json:
        for finding in findings:
            click.echo(json.dumps(finding.as_dict(), sort_keys=True))
    else:
        _print_findings(findings)
    if store:
        counts = store_findings(database, findings, max_event_ids=settings.max_event_ids)
        click.echo(f"stored: {counts['added']} findings added, {counts['updated']} updated", err=True)


def _print_findings(findings: list[Any]) -> None:
    """One table row per finding; every cell cleaned of terminal control characters."""
    from rich.table import Table

    table = Table("risk", "kind", "first seen", "last seen", "events", "summary", "key")
    for f in findings:
        row = [
            f.risk,
            f.kind,
            f.first_seen.isoformat(timespec="seconds"),
            f.last_seen.isoformat(timespec="seconds"),
            str(f.event_count),
            f.summary,
            f.key,
        ]
        table.add_row(*cells(*row))
    print_wide(table)
