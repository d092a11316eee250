"""apprise's own formats in `notify.urls_credential`: `TAGS=URL` lines and YAML files, with
roost's scheme allow-list applied to every URL inside them."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.config.load import load_settings
from roost.config.settings import ConfigError

SECRET = "tk_s3cr3t"


@pytest.fixture
def credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("ROOST_CONFIG", "ROOST_NOTIFY__ALLOWED_SCHEMES"):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "credentials"
    directory.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(directory))
    return directory / "apprise_urls"


def settings_file(tmp_path: Path, allowed: str = "") -> Path:
    path = tmp_path / "roost.toml"
    extra = f"allowed_schemes = [{allowed}]\n" if allowed else ""
    path.write_text(f'[notify]\nurls_credential = "apprise_urls"\n{extra}', encoding="utf-8")
    return path


def targets(path: Path) -> list[tuple[str, list[str]]]:
    return [(t.url.get_secret_value(), t.tags) for t in load_settings(path).notify.targets]


def test_tag_equals_url_lines(tmp_path: Path, credential: Path) -> None:
    credential.write_text(
        "# apprise text format\n"
        f"urgent=ntfys://ntfy.sh/{SECRET}\n"
        "family, log = pover://user@token\n"
        "; a comment too\n"
        "tgram://123:abc/456?silent=no\n",
        encoding="utf-8",
    )
    assert targets(settings_file(tmp_path)) == [
        (f"ntfys://ntfy.sh/{SECRET}", ["urgent"]),
        ("pover://user@token", ["family", "log"]),
        ("tgram://123:abc/456?silent=no", []),
    ]


def test_yaml_configuration(tmp_path: Path, credential: Path) -> None:
    credential.write_text(
        "version: 1\n"
        "tag: home\n"
        "urls:\n"
        f"  - ntfys://ntfy.sh/{SECRET}\n"
        "  - pover://user@token:\n"
        "      - tag: urgent\n"
        "        sound: siren\n"
        "      - tag: [family, log]\n"
        "  - json://hooks.local/x:\n"
        "      tag: log\n",
        encoding="utf-8",
    )
    assert targets(settings_file(tmp_path)) == [
        (f"ntfys://ntfy.sh/{SECRET}", ["home"]),
        ("pover://user@token?sound=siren", ["home", "urgent"]),
        ("pover://user@token", ["home", "family", "log"]),
        ("json://hooks.local/x", ["home", "log"]),
    ]


@pytest.mark.parametrize(
    "text",
    [
        f"urgent=xmpp://bot:{SECRET}@example.com\n",
        f"urls:\n  - xmpp://bot:{SECRET}@example.com:\n      tag: urgent\n",
    ],
)
def test_the_allow_list_applies_inside_the_file(
    tmp_path: Path, credential: Path, text: str
) -> None:
    credential.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(settings_file(tmp_path))
    assert "scheme 'xmpp' isn't in allowed_schemes" in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("include other.cfg\n", "line 1: include is not supported"),
        (f"ntfys://ntfy.sh/a\nnot a url {SECRET}\n", "line 2: neither a URL nor TAGS=URL"),
        ("urls:\n  - ntfy:\n      topic: x\n", "urls entry 1: not a URL"),
        ("urls: [\n", "not valid YAML"),
    ],
)
def test_what_cannot_be_read_is_named_without_the_url(
    tmp_path: Path, credential: Path, text: str, message: str
) -> None:
    credential.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(settings_file(tmp_path))
    assert message in str(info.value)
    assert SECRET not in str(info.value)
