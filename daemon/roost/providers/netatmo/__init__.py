"""Netatmo Connect (api.netatmo.com): an adaptive poll in, form and JSON writes out.

The vendor boundary: the account model, endpoint, OAuth app, write limits and `build`,
which the registry calls for an account of this vendor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from annotated_types import Ge

from roost.core.checks import After
from roost.providers.accounts import HttpUrl, OAuthAccount, require_loopback
from roost.providers.base import OAuthApp, Rate, WriteLimits
from roost.providers.netatmo import scopes

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

API_URL = "https://api.netatmo.com"
SCOPES = " ".join(scopes.SCOPES)  # derived from the endpoints the commands write
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "run `roost auth netatmo`, then restart roost"
# Writes share the per-user budget with the polls; the budget enforces the hard limits,
# these keep a burst of rule writes from starving the polls.
WRITE_LIMITS = WriteLimits(per_device=Rate(3, 10.0), per_account=Rate(10, 1.0))


def check_listen(value: str | None) -> str | None:
    if value is not None:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. '127.0.0.1:8765'")
    return value


@dataclass(kw_only=True)
class NetatmoAccount(OAuthAccount):
    """Netatmo Connect: an OAuth2 app (client id and secret) and a refresh token that
    Netatmo rotates on every refresh (roost keeps the live one in its state directory).
    An adaptive poll, optionally woken by signed webhooks received on `webhook_listen`."""

    provider: Literal["netatmo"]
    api_url: HttpUrl = API_URL
    home_id: str | None = None
    fast_poll_s: Annotated[float, Ge(0.1)] = 5
    slow_poll_s: Annotated[float, Ge(1)] = 30
    fast_window_s: Annotated[float, Ge(0)] = 120
    eco_mode: Literal["away", "hg"] = "away"
    webhook_listen: Annotated[str | None, After(check_listen)] = None
    webhook_url: str | None = None
    # A webhook_listen address other than loopback must be meant: roost has no TLS.
    allow_remote: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require_loopback(self.webhook_listen, self.allow_remote, "webhook_listen")

    def webhook_address(self) -> tuple[str, int] | None:
        if self.webhook_listen is None:
            return None
        host, _, port = self.webhook_listen.rpartition(":")
        return host.strip("[]"), int(port)


Account = NetatmoAccount


def oauth(account: NetatmoAccount) -> OAuthApp:
    """The plain code flow (Netatmo documents no PKCE); the scopes go in the exchange too."""
    return OAuthApp(
        account.api_url + "/oauth2/authorize",
        account.api_url + "/oauth2/token",
        SCOPES,
        scope_in_exchange=True,
        client_id=account.client_id,
        client_secret=account.client_secret,
    )


def build(account: NetatmoAccount, context: ProviderContext) -> Provider:
    from roost.providers.netatmo.provider import NetatmoProvider

    return NetatmoProvider.build(account, context)
