"""The Nest web API (home.nest.com): versioned buckets, a subscribe long poll, puts.

The vendor boundary: the account model, endpoint, write limits, its own login for
`roost auth` (no OAuth app) and `build`, which the registry calls for an account of this
vendor.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from annotated_types import Gt

from roost.core.secret import Secret
from roost.host.credentials import secret
from roost.providers.accounts import AccountBase, CredentialName, HttpUrl
from roost.providers.base import Rate, WriteLimits

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

API_URL = "https://home.nest.com"
oauth = None
AUTH_COMMAND = "nest-web"  # `roost auth nest-web`: a browser login copied by hand
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "run `roost auth nest-web` again (fresh browser cookies), then restart roost"
# Gentle: homebridge-nest debounces puts by 2 s and leaves 7 s after a mode change; a rule
# may still set eco on every thermostat of a house at once.
WRITE_LIMITS = WriteLimits(per_device=Rate(burst=2, every_s=10.0), per_account=Rate(5, 3.0))


@dataclass(kw_only=True)
class NestWebAccount(AccountBase):
    """The Nest web API (home.nest.com): a session, a subscribe long poll, puts.

    A Google account (every Nest account today) logs in with the web app's `issue_token`
    URL and the browser's Google cookies (`roost auth nest-web` explains how to copy them),
    renewed every hour until the cookies expire. A legacy Nest account may log in with
    `email` and a password. Or give the `access_token` of a session opened elsewhere (the
    `cztoken` cookie of a browser session; it cannot be renewed).
    """

    provider: Literal["nest_web"]
    api_url: HttpUrl = API_URL
    issue_token: Secret | None = None
    issue_token_credential: CredentialName = None
    cookies: Secret | None = None
    cookies_credential: CredentialName = None
    # The web app's own (public) API key for the Nest auth proxy; copy it from the
    # x-goog-api-key header of the browser's issue_jwt request.
    google_api_key: str | None = None
    auth_proxy_url: str = "https://nestauthproxyservice-pa.googleapis.com"
    email: str | None = None
    password: Secret | None = None
    password_credential: CredentialName = None
    access_token: Secret | None = None
    access_token_credential: CredentialName = None
    subscribe_timeout_s: Annotated[float, Gt(0)] = 120

    def __post_init__(self) -> None:
        google = self.issue_token is not None or self.issue_token_credential is not None
        token_given = self.access_token is not None or self.access_token_credential is not None
        chosen = [google, self.email is not None, token_given]
        if sum(chosen) > 1:
            raise ValueError(
                f"{self.owner}: choose one login: issue_token and cookies (a Google account), "
                "email and password (a legacy Nest account), or access_token"
            )
        if self.email is None and (self.password or self.password_credential):
            raise ValueError(f"{self.owner}: a password needs the account's email")
        if google:
            self._resolve_google()
        elif self.email is not None:
            self.password = secret(self.password, self.password_credential, self.owner, "password")
        elif token_given:
            self.access_token = secret(
                self.access_token, self.access_token_credential, self.owner, "access_token"
            )
        else:
            raise ValueError(
                f"{self.owner}: set issue_token_credential and cookies_credential (a Google "
                "account: see `roost auth nest-web`), email and password, or access_token"
            )

    def _resolve_google(self) -> None:
        if self.google_api_key is None:
            raise ValueError(f"{self.owner}: a Google login needs google_api_key")
        self.issue_token = secret(
            self.issue_token, self.issue_token_credential, self.owner, "issue_token"
        )
        self.cookies = secret(self.cookies, self.cookies_credential, self.owner, "cookies")


Account = NestWebAccount


def add_login_arguments(auth: Any) -> None:
    from roost.providers.nest_web import browser_login

    browser_login.add_arguments(auth)


def login_command(args: argparse.Namespace) -> int:
    from roost.providers.nest_web import browser_login

    return browser_login.command(args)


def build(account: NestWebAccount, context: ProviderContext) -> Provider:
    from roost.providers.nest_web.provider import NestWebProvider

    return NestWebProvider.build(account, context)
