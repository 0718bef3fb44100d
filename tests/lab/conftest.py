"""Fixtures for tests that need the lab network (root, network namespaces, real tools)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from dynapot.lab import Lab, lab_up, started_run_ids


def _lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    for tool in ("ip", "ethtool", "sysctl", "busybox"):
        if shutil.which(tool) is None:
            return f"the lab needs {tool!r} on PATH"
    return None


@pytest.fixture(scope="session")
def lab_env() -> None:
    """Skip (or, under CI, fail) when the lab cannot be built on this machine."""
    reason = _lab_unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"lab tests cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab(lab_env: None) -> Iterator[Lab]:
    """One default lab for the whole session, always torn down."""
    with lab_up() as built:
        yield built


def _leftover_namespaces(run_ids: set[str]) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=15, check=False)
    names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    return [ns for ns in names if any(ns.startswith(f"dp-{rid}-") for rid in run_ids)]


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_namespaces() -> Iterator[None]:
    """At the end of the session, no namespace of a lab started by this run may remain."""
    yield
    run_ids = started_run_ids()
    if not run_ids or shutil.which("ip") is None:
        return
    leftovers = _leftover_namespaces(run_ids)
    assert not leftovers, f"lab namespaces left behind: {leftovers}"
