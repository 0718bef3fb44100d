"""The report as one self-contained HTML page: tables plus inline SVG charts, no JS, no external files.

Charts: activity over time, top sources, top ports, and the real versus virtual OS mix,
drawn here as SVG. Every string that reaches the page goes through `html.escape` (attacker
strings above all: user names, passwords, commands, OS guesses); a Content-Security-Policy
that allows no scripts at all backs that up.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from dynapot.analysis.report import common
from dynapot.analysis.report.common import Table, clean, when
from dynapot.analysis.report.queries import ReportData

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
BAR = "#3b6ea8"
REAL = "#6b8e23"
VIRTUAL = "#c0504d"
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.n { text-align: right; }
td { max-width: 40em; overflow-wrap: anywhere; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; }
.chart { border: 1px solid #ddd; padding: .5em; margin: 0; }
figcaption { font-weight: bold; text-align: center; }
.risk-critical { background: #f4c7c3; } .risk-high { background: #fce8b2; }
.totals span { margin-right: 1.2em; }
svg text { font: 11px sans-serif; fill: #333; }
"""


def esc(value: Any) -> str:
    """Escaped, printable text for element content and attribute values alike."""
    return html.escape(clean(value), quote=True)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(label)}">'
        f"<title>{esc(label)}</title>{''.join(body)}</svg>"
    )


def activity_chart(timeline: list[dict[str, Any]], width: int = 760, height: int = 220) -> str:
    """Events per time bucket as vertical bars, with the first, middle and last bucket named."""
    left, bottom, top = 48, 34, 12
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((b["events"] for b in timeline), default=0)
    body = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0</text>',
    ]
    if timeline and peak:
        step = plot_w / len(timeline)
        for i, bucket in enumerate(timeline):
            if not bucket["events"]:
                continue
            h = plot_h * bucket["events"] / peak
            x, y = left + i * step, top + plot_h - h
            body.append(
                f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(step - 1, 1))}" height="{_num(h)}" '
                f'fill="{BAR}"><title>{esc(bucket["start"])}: {bucket["events"]} events</title></rect>'
            )
    last = len(timeline) - 1
    for i in sorted({0, last // 2, last}) if timeline else []:
        # The end labels are anchored inwards so that they stay inside the picture.
        x, anchor = left + (i + 0.5) * plot_w / len(timeline), "middle"
        if i == 0 and last:
            x, anchor = left, "start"
        elif i == last and last:
            x, anchor = left + plot_w, "end"
        start = when(timeline[i]["start"])
        body.append(f'<text x="{_num(x)}" y="{height - 12}" text-anchor="{anchor}">{esc(start)}</text>')
    if not peak:
        body.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle">no events</text>'
        )
    return _svg(width, height, "Activity over time", body)


def bar_chart(label: str, items: Sequence[tuple[str, int]], width: int = 370) -> str:
    """Horizontal bars, largest first: top sources, top ports."""
    row, left, top = 20, 150, 8
    height = top * 2 + row * max(len(items), 1)
    peak = max((value for _, value in items), default=0)
    body: list[str] = []
    for i, (name, value) in enumerate(items):
        y = top + i * row
        w = (width - left - 50) * value / peak if peak else 0
        body.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{esc(name[:24])}</text>')
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{_num(max(w, 1))}" height="{row - 6}" fill="{BAR}">'
            f"<title>{esc(name)}: {value}</title></rect>"
        )
        body.append(f'<text x="{_num(left + w + 4)}" y="{y + 13}">{value}</text>')
    if not items:
        body.append(f'<text x="{width / 2}" y="{top + 13}" text-anchor="middle">none</text>')
    return _svg(width, height, label, body)


def os_mix_chart(os_mix: list[dict[str, Any]], width: int = 370) -> str:
    """Hosts per OS group: a real and a virtual bar side by side, to compare the mixes."""
    totals: dict[str, list[int]] = {}
    for row in os_mix:
        totals.setdefault(row["os"], [0, 0])[1 if row["virtual"] else 0] += row["hosts"]
    names = sorted(totals, key=lambda n: (-sum(totals[n]), n))[:12]
    row, left, top = 26, 150, 24
    height = top + 8 + row * max(len(names), 1)
    peak = max((max(totals[n]) for n in names), default=0)
    body = [
        f'<rect x="{left}" y="4" width="10" height="10" fill="{REAL}"/>'
        f'<text x="{left + 14}" y="13">real</text>',
        f'<rect x="{left + 60}" y="4" width="10" height="10" fill="{VIRTUAL}"/>'
        f'<text x="{left + 74}" y="13">virtual</text>',
    ]
    for i, name in enumerate(names):
        y = top + i * row
        body.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{esc(name[:24])}</text>')
        for j, (count, colour, kind) in enumerate(
            ((totals[name][0], REAL, "real"), (totals[name][1], VIRTUAL, "virtual"))
        ):
            w = (width - left - 40) * count / peak if peak else 0
            by = y + 2 + j * 11
            body.append(
                f'<rect x="{left}" y="{by}" width="{_num(max(w, 0.5))}" height="10" fill="{colour}">'
                f"<title>{esc(name)}: {count} {kind}</title></rect>"
            )
            body.append(f'<text x="{_num(left + w + 4)}" y="{by + 9}">{count}</text>')
    if not names:
        body.append(f'<text x="{width / 2}" y="{top + 13}" text-anchor="middle">no hosts</text>')
    return _svg(width, height, "Real and virtual hosts by OS", body)


def _table(table: Table, row_class: list[str] | None = None) -> str:
    """The table under its heading."""
    heading = f"<h2>{esc(table.title)}</h2>\n"
    if not table.rows:
        return heading + "<p>none</p>"
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    lines = []
    for i, cells in enumerate(table.rows):
        klass = f' class="{esc(row_class[i])}"' if row_class else ""
        tds = "".join(
            f'<td class="n">{esc(c)}</td>'
            if isinstance(c, int) and not isinstance(c, bool)
            else f"<td>{esc(c)}</td>"
            for c in cells
        )
        lines.append(f"<tr{klass}>{tds}</tr>")
    return heading + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _chart(caption: str, svg: str) -> str:
    return f'<figure class="chart">{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def render_html(data: ReportData) -> str:
    s, t = data.sections, data.totals
    period = data.as_dict()["period"]
    title = f"dynapot report {when(period['since'])} to {when(period['until'])}"
    top_sources = [(r["address"], r["events"]) for r in s["sources"][:10]]
    top_ports = [
        (f"{p['port']}/{p['protocol']}" + (f" {p['service']}" if p["service"] else ""), p["events"])
        for p in s["ports"][:10]
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>generated {esc(when(period['generated_at']))}</p>",
        '<p class="totals">'
        + "".join(f"<span>{esc(name.replace('_', ' '))}: <b>{value}</b></span>" for name, value in t.items())
        + "</p>",
        '<div class="charts">',
        _chart(f"Activity over time ({data.bucket_seconds} s buckets)", activity_chart(s["timeline"])),
        _chart("Top sources by events", bar_chart("Top sources by events", top_sources)),
        _chart("Top ports by events", bar_chart("Top ports by events", top_ports)),
        _chart("Real and virtual hosts by OS", os_mix_chart(s["os_mix"])),
        "</div>",
        _table(
            Table(
                "Findings",
                [
                    "risk",
                    "kind",
                    "first seen",
                    "last seen",
                    "sources",
                    "targets",
                    "ports",
                    "events",
                    "summary",
                ],
                [
                    [
                        f["risk"],
                        f["kind"],
                        when(f["first_seen"]),
                        when(f["last_seen"]),
                        " ".join(f["sources"][:10]),
                        " ".join(f["targets"][:10]) + (" ..." if len(f["targets"]) > 10 else ""),
                        " ".join(f["ports"][:10]) + (" ..." if len(f["ports"]) > 10 else ""),
                        f["event_count"],
                        f["summary"],
                    ]
                    for f in s["findings"]
                ],
            ),
            [f"risk-{f['risk']}" for f in s["findings"]],
        ),
        _table(
            Table(
                "Alerts",
                ["time", "status", "channel", "attempts", "finding", "message", "last error"],
                [
                    [
                        when(a["time"]),
                        a["status"],
                        a["channel"],
                        a["attempts"],
                        a["finding"],
                        a["message"],
                        a["last_error"],
                    ]
                    for a in s["alerts"]
                ],
            )
        ),
        _table(common.honeypots(data, " ".join)),
        _table(common.sources(data)),
        _table(common.ports(data)),
        _table(common.credentials(data)),
        _table(common.commands(data)),
        _table(common.high_interaction(data)),
        _table(common.stories(data)),
        _table(common.timeline(data)),
        _table(common.os_mix(data)),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
