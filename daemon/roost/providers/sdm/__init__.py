"""Google Smart Device Management: Cloud Pub/Sub pull in, SDM `executeCommand` out.

The vendor boundary: the account model, endpoints, OAuth app, write limits and `build`,
which the registry calls for an account of this vendor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from annotated_types import Ge, Gt, Le

from roost.core.checks import After
from roost.providers.accounts import HttpUrl, Name, OAuthAccount
from roost.providers.base import OAuthApp, Rate, WriteLimits

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

API_URL = "https://smartdevicemanagement.googleapis.com/v1"
TOKEN_URL = "https://www.googleapis.com/oauth2/v4/token"
PUBSUB_URL = "https://pubsub.googleapis.com/v1"
AUTHORIZE_URL = "https://nestservices.google.com/partnerconnections/{project_id}/auth"
SCOPES = "https://www.googleapis.com/auth/sdm.service https://www.googleapis.com/auth/pubsub"
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "run `roost auth sdm`, then restart roost"
# Sandbox limits (PROTOCOLS.md §3.4): executeCommand 10 QPM per user; each trait command
# 5 QPM per device (held here for all of a device's commands together, to stay clear of
# the device-instance limit other projects share).
WRITE_LIMITS = WriteLimits(per_device=Rate(burst=5, every_s=12.0), per_account=Rate(10, 6.0))


SUBSCRIPTION = r"^projects/[^/]+/subscriptions/[^/]+$"


def check_subscription(value: str) -> str:
    if not re.match(SUBSCRIPTION, value):
        raise ValueError(f"String should match pattern {SUBSCRIPTION!r}")
    return value


@dataclass(kw_only=True)
class SdmAccount(OAuthAccount):
    """Google Smart Device Management: a Device Access project, an OAuth client and a
    refresh token (scopes sdm.service and pubsub), and the Pub/Sub pull subscription on
    the project's event topic."""

    provider: Literal["sdm"]
    api_url: HttpUrl = API_URL
    project_id: Name  # the Device Access project id
    token_url: HttpUrl = TOKEN_URL
    pubsub_url: HttpUrl = PUBSUB_URL
    subscription: Annotated[str, After(check_subscription)]
    max_messages: Annotated[int, Ge(1), Le(1000)] = 100
    pull_timeout_s: Annotated[float, Gt(0)] = 90


Account = SdmAccount


def oauth(account: SdmAccount) -> OAuthApp:
    """The Device Access partner page, with PKCE; offline access for a refresh token."""
    return OAuthApp(
        AUTHORIZE_URL.format(project_id=account.project_id),
        account.token_url,
        SCOPES,
        pkce=True,
        extra={"access_type": "offline", "prompt": "consent"},
        client_id=account.client_id,
        client_secret=account.client_secret,
    )


def build(account: SdmAccount, context: ProviderContext) -> Provider:
    from roost.providers.sdm.provider import SdmProvider

    return SdmProvider.build(account, context)
