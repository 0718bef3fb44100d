"""The plan page in Debian's Chromium against a real `dynapot web`: log in, see the plan the
daemon holds, apply it, see it applied (screenshots in test-artifacts/web/).

The daemon's part is played by the same `Deployer.replan` the daemon calls, with the real
nmap databases, over the server's database.
"""

from __future__ import annotations

from sqlalchemy import update
from test_web_browser import chromium, log_in, page, server, shot  # noqa: F401 (fixtures)
from web_fixtures import HOSTILE

from dynapot.config import NetworkSettings, PlannerSettings
from dynapot.db.models import Host
from dynapot.deploy import Deployer


def test_see_the_pending_plan_apply_it_and_see_it_applied(page, server, catalog, tmp_path):  # noqa: F811
    _, db, settings_path = server
    text = settings_path.read_text()  # the admin chose hold (the page says so)
    settings_path.write_text(text.replace("fill_ratio = 0.5", 'fill_ratio = 0.5\napply = "hold"'))
    with db.session() as session:  # the seeded decoy, as the daemon would have deployed it: with a MAC
        session.execute(update(Host).where(Host.ip == "198.18.0.10").values(mac="00:0c:29:00:00:10"))
    network = NetworkSettings(cidr="198.18.0.0/24", exclude=("198.18.0.250-198.18.0.254",))
    deployer = Deployer(db, network, PlannerSettings(fill_ratio=0.05, apply="hold"), catalog)
    config = tmp_path / "honeyd.conf"
    held = deployer.replan(config, hold=True)
    assert held.held and not held.moved and held.held_plan is not None
    log_in(page)
    page.wait_for_selector("nav")
    page.click("nav >> text=Plan")
    page.wait_for_selector("table.diff")
    assert held.held in page.text_content("#pending")
    added = page.locator("table.diff tr.added")
    assert added.count() == len(held.held_plan.added) > 0
    shot(page, "10-plan-pending")
    page.click("#apply")
    page.wait_for_selector("#approved")
    assert page.locator("#apply").count() == 0
    shot(page, "11-plan-approved")
    applied = deployer.replan(config, hold=True)  # the daemon's next round
    assert applied.moved and {vh.ip for vh in applied.plan.virtual_hosts} >= set(held.held_plan.added)
    page.goto("/plan")
    page.wait_for_selector("#nothing")
    assert page.text_content("#apply-mode") == "hold"
    assert "applied by alice" in page.text_content("#current")
    shot(page, "12-plan-applied")
    page.click("nav >> text=Virtual hosts")
    page.wait_for_selector("table.virtual-hosts")
    rows = page.locator("table.virtual-hosts tbody tr")
    assert rows.count() == len(applied.plan.virtual_hosts)
    assert held.held_plan.added[0] in page.text_content("table.virtual-hosts")
    assert HOSTILE not in page.content().replace("&lt;script&gt;", "")  # only ever as text
    shot(page, "13-virtual-hosts")
