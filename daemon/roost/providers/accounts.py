"""What every account's settings share, and the helpers a vendor's settings model uses.

Each vendor's account model lives in its package (`providers/<vendor>/__init__.py`) and
derives from `AccountBase`; `config/load.py` assembles the union of them from the registry.
They are plain dataclasses: pydantic validates them where the configuration is read (a
child process for `roost run`), reading the `Annotated` checks, and runs `__post_init__`.
Secrets are given inline or as systemd credentials (`<what>_credential`), exactly one
(`credentials.py`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from annotated_types import MinLen

from roost.core.checks import After
from roost.core.secret import Secret
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


@dataclass(kw_only=True)
class Section:
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}


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


def check_http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http:// for a local simulator)")
    return value.rstrip("/")


# Every `<what>_credential` names a plain file in $CREDENTIALS_DIRECTORY.
CredentialName = Annotated[str | None, After(check_credential_name)]
HttpUrl = Annotated[str, After(check_http_url)]
Name = Annotated[str, MinLen(1)]


@dataclass(kw_only=True)
class AccountBase(Section):
    provider: str
    name: Name
    api_url: HttpUrl
    tags: Annotated[list[str], After(check_tags)] = field(default_factory=list)  # `--tag`

    @property
    def owner(self) -> str:
        return f"account {self.name!r}"


@dataclass(kw_only=True)
class OAuthAccount(AccountBase):
    """An account of an OAuth app (client id and secret) with a refresh token; with
    `use_stored_tokens` the tokens `roost auth` stored in the state directory instead."""

    client_id: Name
    client_secret: Secret | None = None
    client_secret_credential: CredentialName = None
    refresh_token: Secret | None = None
    refresh_token_credential: CredentialName = None
    use_stored_tokens: bool = False

    def __post_init__(self) -> None:
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

    def oauth_secrets(self) -> tuple[str, str]:
        """The client secret and the refresh token ("": use the tokens `roost auth` stored)."""
        assert self.client_secret is not None  # resolved by validation
        refresh = self.refresh_token
        return self.client_secret.get_secret_value(), refresh.get_secret_value() if refresh else ""


def given_fields(account: AccountBase) -> dict[str, Any]:
    """The fields set to something else than their default (what a settings file that
    recreates the account must say), in the model's order."""
    given = {}
    for spec in dataclasses.fields(account):
        value = getattr(account, spec.name)
        if spec.default is not dataclasses.MISSING:
            default = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            default = spec.default_factory()
        else:
            given[spec.name] = value
            continue
        if value != default:
            given[spec.name] = value
    return given
