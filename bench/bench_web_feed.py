"""The live feed at 1,000 events a second for a minute, in the real browser: does the page keep up?

Starts the real `dynapot web --no-tls` on a loopback port over a fresh SQLite database, logs in
with Debian's Chromium (Playwright, headless) and opens the dashboard. Then two phases of the
same page, measured the same way: the reference (the feed live, no events) and the load (events
inserted at --rate a second, in batches of a tenth of a second, for --seconds). In each phase:

- the main thread's answer time: a click on the page (Playwright's mouse click returns once the
  renderer has handled it; a listener is on it) and a script round trip, median, p95 and max;
- frames drawn a second (requestAnimationFrame) and long tasks (> 50 ms, PerformanceObserver);
- the JS heap and DOM nodes at the end (CDP Performance.getMetrics).

After the load: once the page has taken the last batch, rows added by the feed plus its
"N more" must equal the events inserted (nothing lost, nothing counted twice). Prints one JSON
object per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from dynapot.db import open_database
from dynapot.web.accounts import create_user

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "bench password, long enough"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# Installed in the page through the DevTools protocol (the page's CSP forbids inline scripts).
PROBES = """() => {
  window.__bench = {frames: 0, longTasks: 0, longest: 0, clicks: 0, added: 0};
  const b = window.__bench;
  (function tick() { b.frames++; requestAnimationFrame(tick); })();
  new PerformanceObserver(list => { for (const e of list.getEntries()) {
    b.longTasks++; b.longest = Math.max(b.longest, e.duration); } }).observe({entryTypes: ["longtask"]});
  document.addEventListener("click", () => { b.clicks++; });
  new MutationObserver(records => { for (const r of records) for (const n of r.addedNodes)
    if (n.nodeType === 1 && n.classList.contains("new")) b.added++; })
    .observe(document.querySelector("#feed tbody"), {childList: true});
}"""


def emit(name: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"name": name, "value": round(value, 2), "unit": unit, **extra}), flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Writer(threading.Thread):
    """Inserts `rate` events a second, a tenth of them every 100 ms, until `seconds` pass."""

    def __init__(self, path: Path, rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.path, self.rate, self.seconds = path, rate, seconds
        self.inserted = 0
        self.elapsed = 0.0
        self.late_ticks = 0  # ticks that began after their time (the machine could not keep up)

    def run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        per_tick = self.rate // 10
        began = time.monotonic()
        tick = 0
        try:
            while (due := began + tick * 0.1) < began + self.seconds:
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                elif wait < -0.1:
                    self.late_ticks += 1
                now = datetime.now(UTC).isoformat()
                rows = [
                    (
                        now,
                        "tcp",
                        f"203.0.113.{n % 200}",
                        40000 + n % 20000,
                        "198.18.0.10",
                        22,
                        "connect",
                        f"bench {n}",
                    )
                    for n in range(self.inserted, self.inserted + per_tick)
                ]
                with connection:
                    connection.executemany(
                        "INSERT INTO honeypot_events (time, protocol, src_ip, src_port, dst_ip, dst_port, "
                        "kind, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                self.inserted += per_tick
                tick += 1
        finally:
            self.elapsed = time.monotonic() - began
            connection.close()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * share) - 1)]


def measure(page, cdp, seconds: float, phase: str, events_per_second: float) -> None:
    """Answer times, frames and long tasks over `seconds`, then heap and nodes: one line each."""
    page.evaluate("() => { const b = window.__bench; b.frames = 0; b.longTasks = 0; b.longest = 0; }")
    clicks, scripts = [], []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        start = time.perf_counter()
        page.mouse.click(5, 400)  # on the page's body, away from links and forms
        clicks.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        page.evaluate("() => window.__bench.clicks")
        scripts.append((time.perf_counter() - start) * 1000)
        time.sleep(0.2)
    spent = time.monotonic() - began
    counters = page.evaluate("() => window.__bench")
    common = {"phase": phase, "events_per_s": round(events_per_second), "seconds": round(spent, 1)}
    for name, values in (("web_feed_click_ms", clicks), ("web_feed_script_ms", scripts)):
        emit(
            name,
            statistics.median(values),
            "ms",
            p95=round(percentile(values, 0.95), 2),
            max=round(max(values), 2),
            samples=len(values),
            **common,
        )
    emit("web_feed_frames", counters["frames"] / spent, "frames/s", **common)
    emit(
        "web_feed_long_tasks",
        counters["longTasks"],
        "tasks",
        longest_ms=round(counters["longest"], 1),
        **common,
    )
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    emit("web_feed_heap", metrics["JSHeapUsedSize"] / 2**20, "MiB", nodes=int(metrics["Nodes"]), **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="events inserted a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument("--reference-seconds", type=float, default=15.0, help="the idle phase")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit("Debian's chromium is needed (/usr/bin/chromium)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "feed.db"
        db = open_database(f"sqlite:///{path}")
        create_user(db, "bench", PASSWORD, "admin")
        db.dispose()
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        env.pop("DYNAPOT_CONFIG", None)
        command = [sys.executable, "-m", "dynapot", "web", "--no-tls", "--listen", f"127.0.0.1:{port}"]
        server = subprocess.Popen(
            [*command, "--db", f"sqlite:///{path}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(f"{base}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
                try:
                    run(browser, base, path, args)
                finally:
                    browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)


def run(browser, base: str, path: Path, args: argparse.Namespace) -> None:
    page = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900}).new_page()
    page.goto("/login")
    page.fill("input[name=username]", "bench")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#feed-state:text('live')")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    page.evaluate(PROBES)
    measure(page, cdp, args.reference_seconds, "reference", 0)
    writer = Writer(path, args.rate, args.seconds)
    writer.start()
    measure(page, cdp, args.seconds, "load", args.rate)
    writer.join()
    emit(
        "web_feed_insert_rate",
        writer.inserted / writer.elapsed,
        "events/s",
        inserted=writer.inserted,
        late_ticks=writer.late_ticks,
    )
    # The page has taken everything once its newest row is the newest event.
    with sqlite3.connect(path) as connection:
        newest = connection.execute("SELECT max(id) FROM honeypot_events").fetchone()[0]
    began = time.monotonic()
    page.locator(f"#feed tbody tr[data-id='{newest}']").wait_for(timeout=30_000)
    emit("web_feed_catch_up", (time.monotonic() - began) * 1000, "ms", note="after the last insert")
    added = page.evaluate("() => window.__bench.added")
    text = page.text_content("#feed-more") or ""
    found = re.search(r"(\d+)", text)
    more = int(found.group(1)) if found else 0
    emit(
        "web_feed_accounted",
        added + more,
        "events",
        inserted=writer.inserted,
        rows_added=added,
        more=more,
        rows_kept=page.locator("#feed tbody tr").count(),
        exact=added + more == writer.inserted,
    )


if __name__ == "__main__":
    main()
