"""Works with Nest (developer-api.nest.com): REST streaming in, REST `PUT` out.

The vendor boundary: the account model, endpoints, OAuth app and write limits
(`account.py`), and `build`, which the registry calls for an account of this vendor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.providers.nest_wwn.account import (
    API_URL,
    AUTH_COMMAND,
    WRITE_LIMITS,
    NestWwnAccount,
    oauth,
)

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

Account = NestWwnAccount
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "renew its token (`roost auth nest`; Works with Nest is retired), then restart"
__all__ = [
    "API_URL",
    "AUTH_ADVICE",
    "AUTH_COMMAND",
    "WRITE_LIMITS",
    "Account",
    "NestWwnProvider",
    "build",
    "oauth",
]


def build(account: NestWwnAccount, context: ProviderContext) -> Provider:
    from roost.providers.nest_wwn.provider import NestWwnProvider

    assert account.token is not None  # resolved by the settings' validation
    return NestWwnProvider(
        account.name,
        api_url=account.api_url,
        token=account.token.get_secret_value(),
        keepalive_timeout_s=account.keepalive_timeout_s,
        client=context.http_client("nest_wwn"),
    )


def __getattr__(name: str) -> Any:
    if name == "NestWwnProvider":  # imported on first use: a daemon pays only for its vendors
        from roost.providers.nest_wwn.provider import NestWwnProvider

        return NestWwnProvider
    raise AttributeError(name)
