from pathlib import Path

import pytest

from dynapot.config import ConfigError, load_settings, parse_address_range


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dynapot.toml"
    path.write_text(text)
    return path


def test_file_values_are_read(tmp_path):
    path = write(
        tmp_path,
        """
[database]
url = "sqlite:////tmp/x.db"
[[networks]]
cidr = "198.18.0.0/24"
gateway = "198.18.0.1"
exclude = ["198.18.0.200-198.18.0.254"]
[discovery.active]
parallel = 70
interval = 30
polite = true
[planner]
fill_ratio = 0.5
""",
    )
    settings = load_settings(path, environ={})
    assert settings.database_url == "sqlite:////tmp/x.db"
    assert settings.discovery.active.parallel == 70
    assert settings.discovery.active.polite is True
    assert settings.planner.fill_ratio == 0.5
    assert str(settings.networks[0].gateway) == "198.18.0.1"


def test_environment_overrides_file_and_cli_overrides_environment(tmp_path):
    path = write(tmp_path, "[planner]\nfill_ratio = 0.5\n")
    env = {"DYNAPOT_PLANNER__FILL_RATIO": "0.25", "DYNAPOT_DB": "sqlite:////tmp/env.db"}
    settings = load_settings(path, environ=env)
    assert settings.planner.fill_ratio == 0.25
    assert settings.database_url == "sqlite:////tmp/env.db"
    settings = load_settings(path, environ=env, overrides={"database_url": "sqlite:////tmp/cli.db"})
    assert settings.database_url == "sqlite:////tmp/cli.db"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("[planner]\nfill_ratio = 1.5\n", "planner.fill_ratio", "less than or equal to 1"),
        ("[discovery.active]\nparallel = 0\n", "discovery.active.parallel", "greater than or equal to 1"),
        ("[discovery]\nmode = 'loud'\n", "discovery.mode", "'active', 'passive' or 'hybrid'"),
        ('[[networks]]\ncidr = "198.18.0.5/24"\n', "networks[0].cidr", "not an IPv4 network"),
        ('[[networks]]\ncidr = "banana"\n', "networks[0].cidr", "not an IPv4 network"),
        ('[[networks]]\ncidr = "198.18.0.0/24"\ngateway = "198.19.0.1"\n', "networks[0].gateway", "outside"),
        ('[[networks]]\ncidr = "10.0.0.0/8"\n', "networks", "planner.max_network_size"),
        (
            '[[networks]]\ncidr = "198.18.0.0/24"\nexclude = ["198.18.0.9-198.18.0.1"]\n',
            "exclude",
            "ends before",
        ),
        ("[planner]\nhold_of = 3\n", "planner.hold_of", "not a setting (planner has: hold_off,"),
        ('[alerts]\nurls = ["nosuch://x"]\n', "alerts.urls", "scheme apprise does not know: nosuch://"),
        ("[services]\nftp_logins = 'all'\n", "services.ftp_logins", "'any', 'weak' or 'none'"),
        ("[services]\nsmtp_relay = 'maybe'\n", "services.smtp_relay", "bool"),
        ("[daemon]\nlog_max_mb = 0.5\n", "daemon.log_max_mb", "greater than or equal to 1"),
    ],
)
def test_invalid_settings_name_the_field_and_reason(tmp_path, text, field, reason):
    with pytest.raises(ConfigError) as excinfo:
        load_settings(write(tmp_path, text), environ={})
    message = str(excinfo.value)
    assert field in message
    assert reason in message
    assert "\n" not in message and str(tmp_path / "dynapot.toml") in message  # one line, names the file


def test_broken_toml_and_missing_file_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[planner\n"), environ={})
    with pytest.raises(ConfigError, match="no such settings file"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_address_ranges():
    assert parse_address_range("198.18.0.5") == (0xC6120005, 0xC6120005)
    assert parse_address_range("198.18.0.0/30") == (0xC6120000, 0xC6120003)
    assert parse_address_range("198.18.0.1-198.18.0.3") == (0xC6120001, 0xC6120003)
    with pytest.raises(ValueError):
        parse_address_range("198.18.0.x")


def test_the_readme_settings_example_is_valid(tmp_path):
    """The settings documented in the README load as written (docs that drift fail here)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("### Settings", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    path = tmp_path / "dynapot.toml"
    path.write_text(example)
    settings = load_settings(path, environ={})
    assert settings.daemon.interface == "eth1" and settings.alerts.min_risk == "high"
    assert settings.correlation.worm.sources == 3 and settings.planner.hold_off == 3600


def test_environment_errors_name_the_variable_and_the_value():
    with pytest.raises(ConfigError) as excinfo:
        load_settings(None, environ={"DYNAPOT_PLANNER__FILL_RATIO": "2"})
    assert str(excinfo.value) == (
        "DYNAPOT_PLANNER__FILL_RATIO=2 (planner.fill_ratio): must be less than or equal to 1"
    )
    with pytest.raises(ConfigError, match=r"^DYNAPOT_PLANER__X=1 \(planer\): not a setting"):
        load_settings(None, environ={"DYNAPOT_PLANER__X": "1"})


def test_alert_urls_are_checked_without_repeating_them():
    for url in ("mailto://user:hunter2@", "json://:hunter2@", "hunter2", "nosuch://u:hunter2@h"):
        with pytest.raises(ConfigError) as excinfo:
            load_settings(None, environ={"DYNAPOT_ALERTS__URLS": f'["{url}"]'})
        assert "hunter2" not in str(excinfo.value) and "alerts.urls" in str(excinfo.value)


def test_settings_remember_where_each_value_came_from(tmp_path):
    path = write(tmp_path, "[planner]\nfill_ratio = 0.5\n[database]\nurl = 'postgresql://u:pw@h/d'\n")
    settings = load_settings(
        path,
        environ={"DYNAPOT_DAEMON__INTERFACE": "eth9"},
        overrides={"planner": {"hold_off": 5}},
        override_names={"planner.hold_off": "--hold-off"},
    )
    assert settings.describe("planner.fill_ratio") == f"planner.fill_ratio = 0.5 in {path}"
    assert settings.describe("database_url") == f'database.url = "postgresql://u:***@h/d" in {path}'
    assert settings.describe("daemon.interface") == "DYNAPOT_DAEMON__INTERFACE=eth9 (daemon.interface)"
    assert settings.describe("planner.hold_off") == "--hold-off 5.0"
    assert settings.describe("planner.unknown_os") == 'planner.unknown_os = "infer" (default)'


def test_service_options_default_to_the_imitated_daemons_own(tmp_path):
    defaults = load_settings(write(tmp_path, ""), environ={}).services
    assert (defaults.ftp_logins, defaults.ftp_anonymous, defaults.smtp_relay) == ("weak", False, False)
    text = "[services]\nftp_logins = 'any'\nftp_anonymous = true\nsmtp_relay = true\n"
    chosen = load_settings(write(tmp_path, text), environ={}).services
    assert (chosen.ftp_logins, chosen.ftp_anonymous, chosen.smtp_relay) == ("any", True, True)
