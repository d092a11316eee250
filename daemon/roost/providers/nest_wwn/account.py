"""Works with Nest: the account's settings, endpoints, OAuth app and write limits."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from roost.accounts import AccountBase, check_credential_name, secret
from roost.providers.base import OAuthApp, Rate, WriteLimits

API_URL = "https://developer-api.nest.com"
AUTHORIZE_URL = "https://home.nest.com/login/oauth2"
TOKEN_URL = "https://api.home.nest.com/oauth2/access_token"
AUTH_COMMAND = "nest"  # `roost auth nest`

# PROTOCOLS.md 1.5: writes are limited per device per hour (the numbers are not published)
# and per token; Nest recommends at most one call a minute. A short burst keeps a scene
# ("away: eco everywhere, then back") snappy; the sustained rate is one a minute per device.
WRITE_LIMITS = WriteLimits(per_device=Rate(burst=3, every_s=60.0), per_account=Rate(10, 6.0))


class NestWwnAccount(AccountBase):
    """Works with Nest: a long-lived access token, REST streaming."""

    provider: Literal["nest_wwn"]
    api_url: str = API_URL
    token: SecretStr | None = None
    token_credential: str | None = None
    # WWN sends a keep-alive every 30 s: a silent stream is detected well within two of them.
    keepalive_timeout_s: float = Field(default=45, gt=0)

    @field_validator("token_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return check_credential_name(value)

    @model_validator(mode="after")
    def _resolve_token(self) -> Self:
        self.token = secret(self.token, self.token_credential, self.owner, "token")
        return self


def oauth(account: NestWwnAccount) -> OAuthApp:
    """The PIN flow of a WWN product: its client id and secret are the product's, given to
    `roost auth` (no PKCE, no refresh token; the token is long-lived)."""
    return OAuthApp(AUTHORIZE_URL, TOKEN_URL, pin=True)
