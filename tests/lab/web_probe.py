"""Chromium in the sensor's namespace, driving `dynapot web` there (run by test_daemon.py).

    python web_probe.py URL USER PASSWORD WATCH_SOURCE SCREENSHOTS

Logs in, opens the dashboard and prints `ready` once its live feed is connected; then waits
(at most 90 s) for an event from WATCH_SOURCE to appear in the feed without a reload and prints
`seen`; then sets the planner's fill ratio to 0.5 on the settings page and prints `saved`.
Each step saves a screenshot; any failure prints `error: ...` and exits 1. Bounded throughout.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> int:
    url, user, password, source, folder = sys.argv[1:6]
    shots = Path(folder)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        try:
            page = browser.new_page(base_url=url)
            page.goto("/login")
            page.fill("input[name=username]", user)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_selector("#feed-state:text('live')", timeout=30_000)
            page.screenshot(path=str(shots / "lab-01-dashboard.png"), full_page=True)
            print("ready", flush=True)
            page.locator("#feed tr.new", has_text=source).first.wait_for(timeout=90_000)
            page.screenshot(path=str(shots / "lab-02-live-probe.png"), full_page=True)
            print("seen", flush=True)
            page.goto("/settings")
            page.fill("input[name='planner.fill_ratio']", "0.5")
            page.click("#save")
            page.wait_for_selector("text=saved: 1 setting(s) changed", timeout=30_000)
            page.screenshot(path=str(shots / "lab-03-settings-saved.png"), full_page=True)
            print("saved", flush=True)
        except Exception as exc:
            print(f"error: {type(exc).__name__}: {str(exc)[:500]}", flush=True)
            return 1
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
