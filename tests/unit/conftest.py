"""Fixtures for unit tests: the installed nmap's databases, loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dynapot.personality.catalog import MacVendors, PersonalityCatalog
from dynapot.personality.osdb import load_osdb

OSDB = Path("/usr/share/nmap/nmap-os-db")
MAC_PREFIXES = Path("/usr/share/nmap/nmap-mac-prefixes")


@pytest.fixture(scope="session")
def catalog() -> PersonalityCatalog:
    if not OSDB.exists():
        if os.environ.get("CI"):
            pytest.fail("nmap is not installed (the set-up installs it)")
        pytest.skip("nmap is not installed")
    return PersonalityCatalog(load_osdb(OSDB), MacVendors.load(MAC_PREFIXES))
