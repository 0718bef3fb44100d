"""`dynapot admin held-plan` and `apply-plan`: a held plan reviewed and approved from the console,
as the plan page and the API do it (the same `approve_plan`: only the plan pending, once, audited)."""

from __future__ import annotations

import getpass
import json

import pytest
from click.testing import CliRunner
from plan_fixtures import NETWORK, held_plan
from sqlalchemy import select
from web_fixtures import HOSTILE, make_database

from dynapot.cli import main
from dynapot.db.models import AuditEntry, PlanReview

ESCAPE = "\x1b[2J"  # a terminal escape (clear screen) in what a real host's banner said


@pytest.fixture
def held(tmp_path, db_url):
    db, settings = make_database(tmp_path, db_url)
    digest = held_plan(db, hostile=HOSTILE + ESCAPE)
    try:
        yield db, digest, ["--db", db_url, "--config", str(settings)]
    finally:
        db.dispose()


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_the_held_plan_is_shown_with_its_diff_and_digest(held) -> None:
    _, digest, options = held
    shown = invoke("admin", "held-plan", *options)
    assert shown.exit_code == 0, shown.output
    assert f"pending plan for {NETWORK}" in shown.output and "1 added" in shown.output
    assert "added    198.18.0.20 Linux 2.6.18 - 2.6.22 [22/tcp]" in shown.output
    assert f"dynapot admin apply-plan {digest}" in shown.output
    assert "\x1b" not in shown.output and "\\x1b[2J" in shown.output  # a terminal escape, shown not run
    as_json = json.loads(invoke("admin", "held-plan", "--json", *options).output)
    assert as_json["pending"]["digest"] == digest and as_json["pending"]["added"][0]["ip"] == "198.18.0.20"
    assert HOSTILE + ESCAPE in as_json["pending"]["added"][0]["why"]  # JSON escapes it


def test_apply_approves_the_pending_plan_once_and_audits_it(held) -> None:
    db, digest, options = held
    done = invoke("admin", "apply-plan", digest.upper(), *options)
    assert done.exit_code == 0, done.output
    assert f"approved the plan for {NETWORK}" in done.output
    again = invoke("admin", "apply-plan", digest, *options)
    assert again.exit_code == 2 and "no longer the one pending" in again.output
    with db.session() as session:
        row = session.scalars(select(PlanReview)).one()
        audit = [(a.actor, a.action, a.target, a.new_value) for a in session.scalars(select(AuditEntry))]
    assert (row.status, row.approved_by) == ("approved", f"cli:{getpass.getuser()}")
    assert audit[-1] == (f"cli:{getpass.getuser()}", "plan.apply", NETWORK, digest)
    shown = invoke("admin", "held-plan", *options)
    assert "approved plan" in shown.output and "approved by cli:" in shown.output
    assert "apply it with" not in shown.output


def test_nothing_held_says_so(tmp_path) -> None:
    db, settings = make_database(tmp_path)
    db.dispose()
    url = f"sqlite:///{tmp_path / 'web.db'}"
    shown = invoke("admin", "held-plan", "--db", url, "--config", str(settings))
    assert shown.exit_code == 0 and "no plan is waiting" in shown.output
