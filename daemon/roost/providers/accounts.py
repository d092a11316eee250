"""What every account's settings share, and the helpers a vendor's settings model uses.

Each vendor's account model lives in its package (`providers/<vendor>/account.py`) and
derives from `AccountBase`; `config.py` assembles the union of them from the registry.
Secrets are given inline or as systemd credentials (`<what>_credential`), exactly one
(`credentials.py`).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from roost.host.credentials import check_credential_name, optional_secret, secret


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve anywhere


def require_loopback(listen: str | None, allow_remote: bool, what: str) -> None:
    if listen is not None and not allow_remote and not is_loopback(listen.rpartition(":")[0]):
        raise ValueError(
            f"{what} = {listen!r} is reachable from other machines; use a loopback address "
            "(127.0.0.1, ::1) or set allow_remote = true to mean it"
        )


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")


def check_tags(tags: list[str]) -> list[str]:
    """Short names (letters, digits, `-_.`, up to 32), each once."""
    for tag in tags:
        if not TAG.fullmatch(tag):
            raise ValueError(
                f"tag {tag!r}: up to 32 letters, digits, '-', '_' or '.', starting with a "
                "letter or digit"
            )
    doubled = sorted({t for t in tags if tags.count(t) > 1})
    if doubled:
        raise ValueError(f"tags listed twice: {', '.join(doubled)}")
    return tags


class AccountBase(Section):
    provider: str
    name: str = Field(min_length=1)
    api_url: str
    tags: list[str] = Field(default_factory=list)  # fleet selection (`roost fleet --tag`)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        return check_tags(value)

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        return value.rstrip("/")

    @field_validator("*")
    @classmethod
    def _credential_name(cls, value: Any, info: ValidationInfo) -> Any:
        """Every `<what>_credential` names a plain file in $CREDENTIALS_DIRECTORY."""
        if info.field_name is not None and info.field_name.endswith("_credential"):
            return check_credential_name(value)
        return value

    @property
    def owner(self) -> str:
        return f"account {self.name!r}"


class OAuthAccount(AccountBase):
    """An account of an OAuth app (client id and secret) with a refresh token; with
    `use_stored_tokens` the tokens `roost auth` stored in the state directory instead."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_credential: str | None = None
    refresh_token: SecretStr | None = None
    refresh_token_credential: str | None = None
    use_stored_tokens: bool = False

    @model_validator(mode="after")
    def _resolve_oauth_secrets(self) -> Self:
        self.client_secret = secret(
            self.client_secret, self.client_secret_credential, self.owner, "client_secret"
        )
        self.refresh_token = optional_secret(
            self.refresh_token,
            self.refresh_token_credential,
            self.owner,
            "refresh_token",
            self.use_stored_tokens,
        )
        return self

    def oauth_secrets(self) -> tuple[str, str]:
        """The client secret and the refresh token ("": use the tokens `roost auth` stored)."""
        assert self.client_secret is not None  # resolved by validation
        refresh = self.refresh_token
        return self.client_secret.get_secret_value(), refresh.get_secret_value() if refresh else ""
