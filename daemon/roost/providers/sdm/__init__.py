"""Google Smart Device Management: Cloud Pub/Sub pull in, SDM `executeCommand` out.

The vendor boundary: the account model, endpoints, OAuth app and write limits
(`account.py`), and `build`, which the registry calls for an account of this vendor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from roost.providers.sdm.account import (
    API_URL,
    PUBSUB_URL,
    SCOPES,
    TOKEN_URL,
    WRITE_LIMITS,
    SdmAccount,
    oauth,
)

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

Account = SdmAccount
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "run `roost auth sdm`, then restart roost"
__all__ = [
    "API_URL",
    "AUTH_ADVICE",
    "PUBSUB_URL",
    "SCOPES",
    "TOKEN_URL",
    "WRITE_LIMITS",
    "Account",
    "SdmProvider",
    "build",
    "oauth",
]


def build(account: SdmAccount, context: ProviderContext) -> Provider:
    from roost.providers.sdm.provider import HTTP_TIMEOUT, SdmProvider

    secret, refresh = account.client_secret, account.refresh_token
    assert secret is not None  # resolved by validation
    return SdmProvider(
        account.name,
        project_id=account.project_id,
        client_id=account.client_id,
        client_secret=secret.get_secret_value(),
        refresh_token=refresh.get_secret_value() if refresh else "",  # "": `roost auth`'s
        subscription=account.subscription,
        api_url=account.api_url,
        token_url=account.token_url,
        pubsub_url=account.pubsub_url,
        tokens=context.tokens,
        memory=context.memory,
        clock=context.clock,
        max_messages=account.max_messages,
        pull_timeout_s=account.pull_timeout_s,
        client=context.http_client("sdm", HTTP_TIMEOUT),
    )


def __getattr__(name: str) -> Any:
    if name == "SdmProvider":  # imported on first use: a daemon pays only for its vendors
        from roost.providers.sdm.provider import SdmProvider

        return SdmProvider
    raise AttributeError(name)
