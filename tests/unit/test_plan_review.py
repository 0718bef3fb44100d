"""Hold mode (`planner.apply = "hold"`): the daemon stores its plan, deploys it once an admin
approves that very plan, and refuses an approval the network has overtaken.

The daemon is built on the loopback interface (nothing is opened or sent until `run`) over a
real database and the real nmap databases; `replan_once` is its re-plan round.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from dynapot.config import load_settings
from dynapot.daemon.engine import Daemon
from dynapot.db.models import Host, PlanReview
from dynapot.deploy import review
from dynapot.discovery.observation import Observation, OsGuess, PortObservation
from dynapot.inventory import record_observations
from dynapot.planner import Plan, ServiceSpec, VirtualHost

SETTINGS = """
[[networks]]
cidr = "198.18.0.0/28"
gateway = "198.18.0.1"

[planner]
fill_ratio = 0.5
apply = "{apply}"

[daemon]
interface = "lo"
state_dir = "{state}"
"""
NETWORK = "198.18.0.0/28"
LINUX = OsGuess("Linux 5.4", 98, "Linux", "Linux", "5.X", "general purpose")
WINDOWS = OsGuess("Microsoft Windows XP SP3", 96, "Microsoft", "Windows", "XP", "general purpose")
SSH = PortObservation("tcp", 22, "open", "ssh", "OpenSSH", "8.9p1")


@pytest.fixture
def daemon(tmp_path, db, catalog) -> Daemon:
    path = tmp_path / "dynapot.toml"
    path.write_text(SETTINGS.format(apply="hold", state=tmp_path / "state"))
    made = Daemon(load_settings(path, environ={}), db, settings_path=path)
    made.deployer.catalog = catalog  # the session's, loaded once
    return made


def real_host(db, ip: str, os: OsGuess = LINUX) -> None:
    seen = Observation(ip=ip, seen_at=datetime.now(UTC), tool="nmap", alive=True, os=os, ports=(SSH,))
    record_observations(db, [seen])


def virtual(db) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Host.ip).where(Host.is_virtual.is_(True))))


def rows(db) -> list[tuple[str, str, str | None]]:
    with db.session() as session:
        return [
            (r.digest, r.status, r.note) for r in session.scalars(select(PlanReview).order_by(PlanReview.id))
        ]


def test_hold_stores_the_plan_and_deploys_nothing_until_it_is_approved(daemon, db):
    real_host(db, "198.18.0.2")
    held = daemon.replan_once()
    assert not held.moved and held.held and virtual(db) == set()
    assert daemon.status.held == held.held
    assert rows(db) == [(held.held, "pending", None)]
    with db.session() as session:
        summary = session.scalars(select(PlanReview)).one().summary
    assert summary["counts"]["added"] == len(held.held_plan.added) > 0
    assert [h["ip"] for h in summary["added"]] == list(held.held_plan.added)
    assert summary["added"][0]["services"][0]["product"] == "OpenSSH"
    assert summary["joined"] == [{"ip": "198.18.0.2", "group": held.held_plan.groups["198.18.0.2"]}]
    assert summary["first_plan"] is True
    again = daemon.replan_once()  # the same picture: the same plan, still one row
    assert again.held == held.held and len(rows(db)) == 1 and virtual(db) == set()

    approved = review.approve(db, held.held, "alice")
    assert approved.status == "approved" and approved.approved_by == "alice"
    applied = daemon.replan_once()
    assert applied.moved and virtual(db) == set(held.held_plan.added)
    assert rows(db) == [(held.held, "applied", None)]
    assert daemon.status.held is None
    assert not daemon.replan_once().moved and rows(db) == [(held.held, "applied", None)]
    with pytest.raises(review.PlanChanged):  # applied: not pending any more, not applied twice
        review.approve(db, held.held, "alice")


def test_an_approval_the_network_overtook_is_superseded_and_no_real_address_is_taken(daemon, db):
    real_host(db, "198.18.0.2")
    first = daemon.replan_once()
    review.approve(db, first.held, "alice")
    taken = first.held_plan.added[0]
    real_host(db, taken)  # a real machine appears on an address the approved plan would fill
    second = daemon.replan_once()
    assert not second.moved and second.held != first.held
    assert taken not in second.held_plan.added and virtual(db) == set()
    assert rows(db) == [(first.held, "superseded", review.CHANGED_NOTE), (second.held, "pending", None)]
    with pytest.raises(review.PlanChanged, match="review again"):
        review.approve(db, first.held, "alice")
    with db.session() as session:
        summary = session.scalars(select(PlanReview).where(PlanReview.digest == second.held)).one().summary
    assert {h["ip"] for h in summary["joined"]} == {"198.18.0.2", taken}  # nothing was applied yet
    review.approve(db, second.held, "alice")
    assert daemon.replan_once().moved and taken not in virtual(db)


def test_the_apply_mode_is_live_and_auto_records_what_it_deploys(daemon, db, tmp_path):
    path = tmp_path / "dynapot.toml"
    real_host(db, "198.18.0.2")
    held = daemon.replan_once()
    path.write_text(path.read_text().replace('apply = "hold"', 'apply = "auto"'))
    assert daemon.reload_policy(force=True) is True and daemon.settings.planner.apply == "auto"
    deployed = daemon.replan_once()
    assert deployed.moved and deployed.held is None and virtual(db)
    # The pending plan was deployed by auto mode: recorded as applied, nothing left open.
    assert [status for _, status, _ in rows(db)] == ["superseded", "applied"]
    assert rows(db)[-1][0] == held.held
    # Back to hold: a second real host joins; the pending plan says only that one joined.
    path.write_text(path.read_text().replace('apply = "auto"', 'apply = "hold"'))
    assert daemon.reload_policy(force=True) is True
    real_host(db, "198.18.0.3", WINDOWS)  # a new OS: the mix changes
    pending = daemon.replan_once()
    assert pending.held and not pending.moved
    with db.session() as session:
        summary = session.scalars(select(PlanReview).where(PlanReview.status == "pending")).one().summary
    assert [h["ip"] for h in summary["joined"]] == ["198.18.0.3"] and summary["first_plan"] is False


def test_the_digest_covers_every_host_and_the_diff():
    vh = VirtualHost(
        "198.18.0.5", "00:0c:29:00:00:01", "Linux 5.X", "Linux 5.4", (ServiceSpec("tcp", 22, "ssh"),)
    )
    plan = Plan((vh,), 1, 10, {}, ("198.18.0.5",), (), ())
    other_port = VirtualHost(vh.ip, vh.mac, vh.os, vh.personality, (ServiceSpec("tcp", 23, "telnet"),))
    digests = {
        review.plan_digest(plan),
        review.plan_digest(Plan((other_port,), 1, 10, {}, ("198.18.0.5",), (), ())),
        review.plan_digest(Plan((vh,), 1, 10, {}, (), (), ("198.18.0.5",))),
    }
    assert len(digests) == 3
    assert review.plan_digest(plan) == review.plan_digest(Plan((vh,), 1, 10, {}, ("198.18.0.5",), (), ()))


def test_a_bad_apply_mode_is_refused(tmp_path):
    from dynapot.config import ConfigError

    path = tmp_path / "dynapot.toml"
    path.write_text(SETTINGS.format(apply="later", state=tmp_path))
    with pytest.raises((ConfigError, ValueError), match="apply"):
        load_settings(path, environ={})


def test_dynapot_status_says_a_plan_is_held(daemon, db, tmp_path):
    from click.testing import CliRunner

    from dynapot.cli import main

    real_host(db, "198.18.0.2")
    held = daemon.replan_once()
    daemon._write_status()
    url = db.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(main, ["status", "--db", url, "--config", str(tmp_path / "dynapot.toml")])
    assert result.exit_code == 0, result.output
    assert f"a new plan is held for review ({held.held[:12]})" in result.output
