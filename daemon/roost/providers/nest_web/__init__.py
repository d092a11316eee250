"""The old Nest web API (home.nest.com): versioned buckets, a subscribe long poll, puts.

The vendor boundary: the account model, endpoint and write limits (`account.py`; no
OAuth), and `build`, which the registry calls for an account of this vendor.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from roost.providers.nest_web.account import API_URL, WRITE_LIMITS, NestWebAccount

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

Account = NestWebAccount
oauth = None
AUTH_COMMAND = "nest-web"  # `roost auth nest-web`: a browser login copied by hand
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "run `roost auth nest-web` again (fresh browser cookies), then restart roost"
__all__ = [
    "API_URL",
    "AUTH_ADVICE",
    "AUTH_COMMAND",
    "WRITE_LIMITS",
    "Account",
    "NestWebProvider",
    "add_login_arguments",
    "build",
    "login_command",
    "oauth",
]


def add_login_arguments(auth: Any) -> None:
    from roost.providers.nest_web import browser_login

    browser_login.add_arguments(auth)


def login_command(args: argparse.Namespace) -> int:
    from roost.providers.nest_web import browser_login

    return browser_login.command(args)


def build(account: NestWebAccount, context: ProviderContext) -> Provider:
    from roost.providers.nest_web.provider import HTTP_TIMEOUT, NestWebProvider
    from roost.providers.nest_web.session import GoogleLogin

    password, token = account.password, account.access_token  # resolved by validation
    google = None
    if account.issue_token is not None and account.cookies is not None:
        google = GoogleLogin(
            account.issue_token.get_secret_value(),
            account.cookies.get_secret_value(),
            account.google_api_key or "",
            account.auth_proxy_url,
        )
    return NestWebProvider(
        account.name,
        api_url=account.api_url,
        google=google,
        email=account.email,
        password=password.get_secret_value() if password is not None else None,
        access_token=token.get_secret_value() if token is not None else None,
        tokens=context.tokens,
        clock=context.clock,
        subscribe_timeout_s=account.subscribe_timeout_s,
        client=context.http_client("nest_web", HTTP_TIMEOUT),
    )


def __getattr__(name: str) -> Any:
    if name == "NestWebProvider":  # imported on first use: a daemon pays only for its vendors
        from roost.providers.nest_web.provider import NestWebProvider

        return NestWebProvider
    raise AttributeError(name)
