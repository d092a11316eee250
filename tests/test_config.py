from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from roost.config.load import _Root, load_settings
from roost.config.settings import (
    ConfigError,
    GuardSettings,
    Settings,
    unknown_env_overrides,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ROOST_"):
            monkeypatch.delenv(name)
    for name in ("CREDENTIALS_DIRECTORY", "STATE_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def creds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    return directory


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roost.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path | None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_defaults_without_a_file() -> None:
    settings = load_settings(None)
    assert settings.daemon.rules_dir == Path("rules")
    assert settings.daemon.state_dir == Path("state")
    assert settings.daemon.dry_run is False
    assert settings.daemon.time_zone is None
    assert settings.log.level == "info"
    assert settings.log.format == "auto"
    assert settings.accounts == []
    assert settings.notify.targets == []
    assert "ntfys" in settings.notify.allowed_schemes
    assert settings.notify.retry_for_s == 6 * 3600
    assert settings.guards.loosened() == []


def test_state_dir_follows_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/roost:/var/lib/other")
    assert load_settings(None).daemon.state_dir == Path("/var/lib/roost")


def test_toml_values_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[daemon]
rules_dir = "/etc/roost/rules"
time_zone = "Europe/Berlin"
dry_run = true
rule_timeout_s = 5

[log]
level = "debug"
format = "json"

[[accounts]]
name = "home"
provider = "nest_wwn"
token = "c.inline-token"

[[accounts]]
name = "sim"
provider = "nest_wwn"
api_url = "http://127.0.0.1:8080/"
token = "c.other"
keepalive_timeout_s = 10

[[notify.targets]]
url = "ntfys://ntfy.sh/topic"
tags = ["urgent"]

[guards]
heat_max_c = 28
""",
    )
    settings = load_settings(path)
    assert settings.daemon.rules_dir == Path("/etc/roost/rules")
    assert settings.daemon.zone().key == "Europe/Berlin"
    assert settings.daemon.dry_run is True
    assert settings.daemon.rule_timeout_s == 5
    assert (settings.log.level, settings.log.format) == ("debug", "json")
    home, sim = settings.accounts
    assert home.api_url == "https://developer-api.nest.com"
    assert home.token is not None
    assert home.token.get_secret_value() == "c.inline-token"
    assert "c.inline-token" not in repr(settings)
    assert sim.api_url == "http://127.0.0.1:8080"
    assert sim.keepalive_timeout_s == 10
    assert settings.notify.targets[0].url.get_secret_value() == "ntfys://ntfy.sh/topic"
    assert settings.notify.targets[0].tags == ["urgent"]
    assert settings.guards.heat_max_c == 28  # tighter than the default: no opt-in needed


def test_env_override_deep_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[daemon]\nrules_dir = "/r"\ndry_run = false\n[log]\nformat = "json"\n')
    monkeypatch.setenv("ROOST_DAEMON__DRY_RUN", "true")
    monkeypatch.setenv("ROOST_LOG__LEVEL", "DEBUG")
    settings = load_settings(path)
    assert settings.daemon.dry_run is True
    assert settings.daemon.rules_dir == Path("/r")
    assert settings.log.level == "debug"
    assert settings.log.format == "json"


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_DAEMON__RULE_TIMEOUT_S", "soon")
    message = config_error(None)
    assert message.startswith("$ROOST_DAEMON__RULE_TIMEOUT_S: daemon.rule_timeout_s: ")


def test_unknown_env_overrides_are_listed() -> None:
    env = {"ROOST_DAEMON__DRY_RUN": "1", "ROOST_DAEMON__DRYRUN": "1", "ROOST_LOGS": "x", "X": "1"}
    assert unknown_env_overrides(env) == ["ROOST_DAEMON__DRYRUN", "ROOST_LOGS"]


def test_token_from_credentials_directory(tmp_path: Path, creds: Path) -> None:
    (creds / "nest_home_token").write_text("c.from-credential\n", encoding="utf-8")
    path = write(
        tmp_path,
        '[[accounts]]\nname = "home"\nprovider = "nest_wwn"\n'
        'token_credential = "nest_home_token"\n',
    )
    account = load_settings(path).accounts[0]
    assert account.token is not None
    assert account.token.get_secret_value() == "c.from-credential"


def test_missing_credential_names_the_account(tmp_path: Path, creds: Path) -> None:
    path = write(
        tmp_path,
        '[[accounts]]\nname = "home"\nprovider = "nest_wwn"\ntoken = "c.x"\n\n'
        '[[accounts]]\nname = "cabin"\nprovider = "nest_wwn"\ntoken_credential = "cabin_token"\n',
    )
    message = config_error(path)
    assert message.startswith(f"{path}:6: accounts[1]: ")
    assert "account 'cabin'" in message
    assert str(creds / "cabin_token") in message


def test_credential_without_credentials_directory(tmp_path: Path) -> None:
    text = '[[accounts]]\nname = "a"\nprovider = "nest_wwn"\ntoken_credential = "t"\n'
    path = write(tmp_path, text)
    assert "$CREDENTIALS_DIRECTORY" in config_error(path)


def test_exactly_one_token_source(tmp_path: Path) -> None:
    neither = '[[accounts]]\nname = "a"\nprovider = "nest_wwn"\n'
    assert "exactly one of token or token_credential" in config_error(write(tmp_path, neither))
    both = neither + 'token = "c.x"\ntoken_credential = "t"\n'
    assert "exactly one of token or token_credential" in config_error(write(tmp_path, both))


def test_credential_name_must_be_a_plain_file_name(tmp_path: Path, creds: Path) -> None:
    text = '[[accounts]]\nname = "a"\nprovider = "nest_wwn"\ntoken_credential = "../etc/shadow"\n'
    assert "accounts[0].token_credential" in config_error(write(tmp_path, text))


def test_typo_names_file_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "# roost\n\n[daemon]\nrules_dir = 'rules'\ndry_runn = true\n")
    assert config_error(path) == f"{path}:5: daemon.dry_runn: Extra inputs are not permitted"


def test_typo_in_dotted_key_finds_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[log]\nlevel = 'info'\n\n[guards]\nheat_minc = 8\n")
    assert config_error(path).startswith(f"{path}:5: guards.heat_minc: ")


def test_wrong_provider_points_at_its_account(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[accounts]]\nname = "a"\nprovider = "nest_wwn"\ntoken = "c.secret-a"\n\n'
        '[[accounts]]\nname = "b"\nprovider = "smartthings"\ntoken = "c.secret-b"\n',
    )
    message = config_error(path)
    assert message.startswith(f"{path}:8: accounts[1].provider: unknown or missing provider")
    assert "'nest_wwn'" in message


def test_errors_never_echo_secrets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[accounts]]\nname = "a"\nprovider = "nest_wwn"\ntoken = "c.very-secret"\n'
        'keepalive_timeout_s = "soon"\n\n'
        '[[notify.targets]]\nurl = "evil://user:hunter2@example.com"\n',
    )
    message = config_error(path)
    assert "keepalive_timeout_s" in message
    assert "scheme 'evil'" in message
    assert "c.very-secret" not in message
    assert "hunter2" not in message


def test_toml_syntax_error_gives_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[daemon]\ndry_run = true\nrules_dir = \n")
    message = config_error(path)
    assert message.startswith(f"{path}:3: TOML syntax error: ")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert config_error(path).startswith(f"{path}: can't read")


def test_unknown_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path, '[daemon]\ntime_zone = "Europe/Atlantis"\n')
    assert "daemon.time_zone: unknown time zone 'Europe/Atlantis'" in config_error(path)


def test_loosened_guard_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "[guards]\nheat_min_c = 5\nheat_max_c = 29\n")
    message = config_error(path)
    assert message.startswith(f"{path}:2: guards.heat_min_c: 5 is looser than the safe default 7")
    assert "allow_loosening" in message


def test_every_loosened_guard_is_named_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[guards]\nheat_min_c = 5\nheat_max_c = 33\n")
    first, second = config_error(path).splitlines()
    assert first.startswith(f"{path}:2: guards.heat_min_c: 5 is looser")
    assert second.startswith(f"{path}:3: guards.heat_max_c: 33 is looser")


def test_loosened_guard_is_listed_when_allowed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[guards]\nheat_min_c = 5\ncool_min_c = 20\nwrites_per_device_per_hour = 40\n"
        "allow_loosening = true\n",
    )
    assert load_settings(path).guards.loosened() == [
        "heat_min_c = 5 (default 7)",
        "writes_per_device_per_hour = 40 (default 20)",
    ]


def test_guard_band_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="heat_min_c must be below heat_max_c"):
        GuardSettings(heat_min_c=20, heat_max_c=10)


def test_duplicate_account_names_rejected(tmp_path: Path) -> None:
    account = '[[accounts]]\nname = "home"\nprovider = "nest_wwn"\ntoken = "c.x"\n'
    message = config_error(write(tmp_path, account + account))
    assert "accounts: account name 'home' is used twice" in message


def test_notify_urls_from_credential(tmp_path: Path, creds: Path) -> None:
    (creds / "apprise_urls").write_text(
        "# mine\nntfys://ntfy.sh/a\n\nmailtos://u:p@example.com\n", encoding="utf-8"
    )
    path = write(
        tmp_path,
        '[notify]\nurls_credential = "apprise_urls"\n'
        '[[notify.targets]]\nurl = "json://hooks.local/x"\ntags = ["log"]\n',
    )
    targets = load_settings(path).notify.targets
    assert [t.url.get_secret_value() for t in targets] == [
        "json://hooks.local/x",
        "ntfys://ntfy.sh/a",
        "mailtos://u:p@example.com",
    ]
    assert [t.tags for t in targets] == [["log"], [], []]


def test_notify_scheme_must_be_allowed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[notify]\nallowed_schemes = ["ntfys"]\n[[notify.targets]]\nurl = "tgram://bot/123"\n',
    )
    assert "scheme 'tgram' isn't in allowed_schemes" in config_error(path)


def test_example_config_loads_and_shows_the_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def all_setting_names(section: type[Any]) -> set[str]:
    names = set()
    hints = get_type_hints(section)
    for field in dataclasses.fields(section):
        names.add(field.name)
        inner = hints[field.name]
        args = getattr(inner, "__args__", ())
        for candidate in (inner, *args):
            if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
                names |= all_setting_names(candidate)
    return names


def test_the_loader_reads_every_setting_of_the_schema() -> None:
    assert list(_Root.model_fields) == [f.name for f in dataclasses.fields(Settings)]


def test_example_config_documents_every_setting() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = sorted(name for name in all_setting_names(Settings) if name not in text)
    assert missing == []
