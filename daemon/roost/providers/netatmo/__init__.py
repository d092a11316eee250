"""Netatmo Connect (api.netatmo.com): an adaptive poll in, form and JSON writes out.

The vendor boundary: the account model, endpoint, OAuth app and write limits
(`account.py`), and `build`, which the registry calls for an account of this vendor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.providers.netatmo.account import API_URL, SCOPES, WRITE_LIMITS, NetatmoAccount, oauth

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

Account = NetatmoAccount
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "run `roost auth netatmo`, then restart roost"
__all__ = [
    "API_URL",
    "AUTH_ADVICE",
    "SCOPES",
    "WRITE_LIMITS",
    "Account",
    "NetatmoProvider",
    "build",
    "oauth",
]


def build(account: NetatmoAccount, context: ProviderContext) -> Provider:
    from roost.providers.netatmo.provider import HTTP_TIMEOUT, NetatmoProvider

    secret, refresh = account.client_secret, account.refresh_token
    assert secret is not None  # resolved by validation
    return NetatmoProvider(
        account.name,
        api_url=account.api_url,
        client_id=account.client_id,
        client_secret=secret.get_secret_value(),
        refresh_token=refresh.get_secret_value() if refresh else "",  # "": `roost auth`'s
        home_id=account.home_id,
        tokens=context.tokens,
        memory=context.memory,
        clock=context.clock,
        fast_poll_s=account.fast_poll_s,
        slow_poll_s=account.slow_poll_s,
        fast_window_s=account.fast_window_s,
        eco_mode=account.eco_mode,
        webhook_listen=account.webhook_address(),
        webhook_url=account.webhook_url,
        client=context.http_client("netatmo", HTTP_TIMEOUT),
    )


def __getattr__(name: str) -> Any:
    if name == "NetatmoProvider":  # imported on first use: a daemon pays only for its vendors
        from roost.providers.netatmo.provider import NetatmoProvider

        return NetatmoProvider
    raise AttributeError(name)
