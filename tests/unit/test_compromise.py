"""The compromise finding: commands typed in a high-interaction session, per the rule."""

from __future__ import annotations

from test_sessions import ATTACKER, HP, rows_of, story

from dynapot.analysis.compromise import compromise_findings
from dynapot.analysis.sessions import group_sessions
from dynapot.config import CompromiseRule


def test_sessions_with_enough_commands_are_findings_keyed_by_session() -> None:
    sessions = group_sessions(rows_of(story()))
    linked, unlinked = compromise_findings(sessions, CompromiseRule())
    assert linked.key == f"compromise:{HP}:{ATTACKER}:60" and unlinked.key == f"compromise:{HP}:unlinked:500"
    assert (linked.targets, linked.event_ids, linked.details["session"]) == ((HP,), (), 1)
    assert "by an unlinked attacker: 1 commands typed, the first: id" in unlinked.summary
    (only,) = compromise_findings(sessions, CompromiseRule(commands=2, risk="critical"))
    assert only.risk == "critical" and only.details["commands"] == 2
    assert compromise_findings(sessions, CompromiseRule(commands=3)) == []


def test_a_session_without_typed_commands_is_no_finding() -> None:
    quiet = [row for row in story() if not (row["type"] == 0 and row["fd"] == 0)]
    assert compromise_findings(group_sessions(rows_of(quiet)), CompromiseRule()) == []
