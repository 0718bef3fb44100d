"""The Host header allowlist (DNS rebinding): another Host gets 400 before anything else."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient
from web_fixtures import make_database

from dynapot.config import ConfigError, load_settings
from dynapot.web.app import create_app
from dynapot.web.context import WebContext
from dynapot.web.hosts import DEFAULT_HOSTS, allowed_hosts, host_name
from dynapot.web.tls import self_signed


@pytest.fixture
def web(tmp_path):
    db, settings_path = make_database(tmp_path)
    context = WebContext(db, load_settings(settings_path), settings_path, tls=True)
    yield context
    db.dispose()


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost", "localhost"),
        ("LocalHost:8443", "localhost"),
        ("127.0.0.1:8443", "127.0.0.1"),
        ("[::1]:8443", "::1"),
        ("[::1]", "::1"),
        ("admin.example.", "admin.example"),
        ("::1", None),  # a bare IPv6 address is not a valid Host
        ("localhost:", None),
        ("localhost:http", None),
        ("[::1", None),
        ("[::1]x", None),
        ("", None),
        (None, None),
        ("a" * 400, None),
    ],
)
def test_host_name_reads_only_well_formed_headers(header, name):
    assert host_name(header) == name


def test_the_defaults_are_the_listen_address_loopback_and_the_certificate_names(tmp_path):
    cert, _ = self_signed(tmp_path, "198.18.0.7")
    assert allowed_hosts((), "198.18.0.7", cert) == DEFAULT_HOSTS | {"198.18.0.7"}
    assert allowed_hosts((), "0.0.0.0") == DEFAULT_HOSTS  # the unspecified address is nobody's Host
    assert allowed_hosts(("Admin.Example.",), "198.18.0.7", cert) == {"admin.example"}


def test_another_host_gets_400_before_anything_else(web):
    app = create_app(web)
    for base in ("https://localhost", "https://127.0.0.1:8443", "https://[::1]:8443"):
        assert TestClient(app, base_url=base).get("/health").status_code == 200
    evil = TestClient(app, base_url="https://rebind.attacker.example", follow_redirects=False)
    for method, path in [
        ("GET", "/health"),
        ("GET", "/login"),
        ("GET", "/static/app.css"),
        ("POST", "/login"),
    ]:
        answer = evil.request(method, path)
        assert answer.status_code == 400, (method, path)
        assert answer.text == "400: unknown Host"
        assert "content-security-policy" in answer.headers
        assert "set-cookie" not in answer.headers
    two = TestClient(app, base_url="https://localhost").get("/health", headers=[("host", "localhost")] * 2)
    assert two.status_code == 400
    assert app.refused_hosts == 5


def test_allowed_hosts_from_the_settings_replace_the_defaults(tmp_path):
    db, settings_path = make_database(tmp_path)
    settings_path.write_text(settings_path.read_text() + 'allowed_hosts = ["dynapot.lab.example"]\n')
    app = create_app(WebContext(db, load_settings(settings_path), settings_path, tls=True))
    assert TestClient(app, base_url="https://dynapot.lab.example").get("/health").status_code == 200
    assert TestClient(app, base_url="https://localhost").get("/health").status_code == 400
    db.dispose()


def test_a_malformed_allowed_host_is_refused_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[web]\nallowed_hosts = ["evil/host"]\n')
    with pytest.raises(ConfigError, match="allowed_hosts"):
        load_settings(path)
