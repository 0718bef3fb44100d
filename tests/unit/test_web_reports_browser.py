"""The reports, findings and sessions pages in Debian's Chromium against a real `dynapot web` over TLS.

The server, browser and page fixtures are test_web_browser.py's (a server of this module's own,
seeded by web_fixtures, plus test_web_reports' logins, findings and Sebek session). Screenshots
go into test-artifacts/web/.
"""

from __future__ import annotations

import csv
import io

import pytest
from test_web_browser import ARTIFACTS, chromium, log_in, page, server, shot  # noqa: F401 (fixtures)
from test_web_reports import FORMULAS, seed_reports
from web_fixtures import HOSTILE, VIEWER


@pytest.fixture(scope="module")
def seeded(server):  # noqa: F811 (the imported fixture)
    seed_reports(server[1])
    return server


def test_a_report_for_a_range_and_its_csv_download(page, seeded):  # noqa: F811
    log_in(page, VIEWER)  # a viewer may read every report
    page.click("nav >> text=Reports")
    page.wait_for_selector("#p-since")
    page.fill("#p-since", "yesterday")
    page.click("#show")
    error = page.wait_for_selector("[data-field='since']")
    assert "not a time" in error.text_content()
    shot(page, "20-report-refused")
    page.click("a.preset[data-preset='24h']")
    page.wait_for_selector("#total-events")
    assert int(page.text_content("#total-events")) >= 35
    assert page.locator("svg.columns rect.column").count() >= 1
    assert HOSTILE in page.text_content("#top-sources")  # an attacker's OS guess, shown as text
    shot(page, "21-report")
    with page.expect_download() as download:
        page.click("a.export[data-format='csv']")
    saved = ARTIFACTS / "report.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    users = {r["user"] for r in rows if r["section"] == "credentials"}
    assert {"'" + f for f in FORMULAS} <= users


def test_findings_filtered_and_one_with_its_events(page, seeded):  # noqa: F811
    log_in(page)
    page.goto("/findings")
    page.select_option("#f-risk", "critical")
    page.select_option("#f-kind", "worm")
    page.click("#filter")
    page.wait_for_url("**/findings?risk=critical&kind=worm")
    assert page.locator("#findings tbody tr.risk-critical").count() == 10
    shot(page, "22-findings")
    page.locator("#findings tbody a").first.click()
    page.wait_for_selector("#finding-events")
    assert HOSTILE in page.text_content("#summary")
    assert page.locator("#finding-events tbody tr").count() == 3
    shot(page, "23-finding")


def test_a_session_replay_steps_and_plays(page, seeded):  # noqa: F811
    log_in(page)
    page.goto("/sessions?preset=24h")
    page.locator("a.replay-link").first.click()
    page.wait_for_selector("#replay-controls:not([hidden])")
    steps = page.locator("#replay li")
    assert steps.count() == 6  # five records and one "lost" marker
    assert page.locator("#replay li:visible").count() == 0  # the replay starts empty
    page.click("#replay-step")
    page.click("#replay-step")
    assert page.locator("#replay li:visible").count() == 2
    assert "ls -la" in page.text_content("#replay li:visible >> nth=1")
    page.click("#replay-play")
    page.locator("#replay-position", has_text="6 / 6").wait_for(timeout=15_000)
    text = page.text_content("#replay")
    assert "\\x1b]0;owned\\x07" in text and "\x1b" not in text and HOSTILE in text
    assert "3 record(s) lost here" in text
    assert page.title() == "dynapot · session replay"  # nothing recorded retitled the page
    shot(page, "24-replay")
