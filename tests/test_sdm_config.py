"""An `sdm` account in the settings: secrets inline or as systemd credentials, checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.config.load import load_settings
from roost.config.settings import ConfigError
from roost.providers.registry import ProviderContext, build_provider
from roost.providers.sdm import SdmAccount
from roost.providers.sdm.provider import SdmProvider

ACCOUNT = """
[[accounts]]
name = "villa"
provider = "sdm"
project_id = "32c8a1b9"
client_id = "1234-abcd.apps.googleusercontent.com"
subscription = "projects/my-gcp-project/subscriptions/roost"
"""


def settings_file(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "roost.toml"
    path.write_text(ACCOUNT + extra, encoding="utf-8")
    return path


def test_an_sdm_account_with_credentials_builds_its_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "sdm_secret").write_text("GOCSPX-secret\n", encoding="utf-8")
    (creds / "sdm_refresh").write_text("1//refresh\n", encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    extra = 'client_secret_credential = "sdm_secret"\nrefresh_token_credential = "sdm_refresh"\n'
    account = load_settings(settings_file(tmp_path, extra)).accounts[0]
    assert isinstance(account, SdmAccount)
    assert account.client_secret is not None
    assert account.client_secret.get_secret_value() == "GOCSPX-secret"
    assert account.api_url == "https://smartdevicemanagement.googleapis.com/v1"
    assert account.pubsub_url == "https://pubsub.googleapis.com/v1"
    provider = build_provider(account, ProviderContext())
    assert isinstance(provider, SdmProvider)
    assert "secret" not in repr(provider)
    assert "refresh" not in repr(provider.auth)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('client_secret = "s"\n', "refresh_token"),
        ('client_secret = "s"\nrefresh_token = "r"\nsubscription = "roost"\n', "subscription"),
        ('client_secret = "s"\nrefresh_token = "r"\npubsub_url = "ftp://x"\n', "pubsub_url"),
    ],
)
def test_an_incomplete_sdm_account_is_reported(tmp_path: Path, extra: str, message: str) -> None:
    text = ACCOUNT + extra
    if 'subscription = "roost"' in extra:
        text = text.replace('subscription = "projects/my-gcp-project/subscriptions/roost"\n', "")
    path = tmp_path / "roost.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
