"""Works with Nest (developer-api.nest.com): REST streaming in, REST `PUT` out.

The vendor boundary: the account model, endpoints, OAuth app, write limits and `build`,
which the registry calls for an account of this vendor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from annotated_types import Gt

from roost.core.secret import Secret
from roost.host.credentials import secret
from roost.providers.accounts import AccountBase, CredentialName, HttpUrl
from roost.providers.base import OAuthApp, Rate, WriteLimits

if TYPE_CHECKING:
    from roost.providers.base import Provider
    from roost.providers.registry import ProviderContext

API_URL = "https://developer-api.nest.com"
AUTHORIZE_URL = "https://home.nest.com/login/oauth2"
TOKEN_URL = "https://api.home.nest.com/oauth2/access_token"
AUTH_COMMAND = "nest"  # `roost auth nest`
# What to do when the account is auth_failed (the status page shows it).
AUTH_ADVICE = "renew its token (`roost auth nest`; Works with Nest is retired), then restart"

# PROTOCOLS.md 1.5: writes are limited per device per hour (the numbers are not published)
# and per token; Nest recommends at most one call a minute. A short burst keeps a scene
# ("away: eco everywhere, then back") snappy; the sustained rate is one a minute per device.
WRITE_LIMITS = WriteLimits(per_device=Rate(burst=3, every_s=60.0), per_account=Rate(10, 6.0))


@dataclass(kw_only=True)
class NestWwnAccount(AccountBase):
    """Works with Nest: a long-lived access token, REST streaming."""

    provider: Literal["nest_wwn"]
    api_url: HttpUrl = API_URL
    token: Secret | None = None
    token_credential: CredentialName = None
    # WWN sends a keep-alive every 30 s: a silent stream is detected well within two of them.
    keepalive_timeout_s: Annotated[float, Gt(0)] = 45

    def __post_init__(self) -> None:
        self.token = secret(self.token, self.token_credential, self.owner, "token")


Account = NestWwnAccount


def oauth(account: NestWwnAccount) -> OAuthApp:
    """The PIN flow of a WWN product: its client id and secret are the product's, given to
    `roost auth` (no PKCE, no refresh token; the token is long-lived)."""
    return OAuthApp(AUTHORIZE_URL, TOKEN_URL, pin=True)


def build(account: NestWwnAccount, context: ProviderContext) -> Provider:
    from roost.providers.nest_wwn.provider import NestWwnProvider

    return NestWwnProvider.build(account, context)
