"""Google SDM: the account's settings, endpoints, OAuth app and write limits."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from roost.accounts import AccountBase, check_credential_name, optional_secret, secret
from roost.providers.base import OAuthApp, Rate, WriteLimits

API_URL = "https://smartdevicemanagement.googleapis.com/v1"
TOKEN_URL = "https://www.googleapis.com/oauth2/v4/token"
PUBSUB_URL = "https://pubsub.googleapis.com/v1"
AUTHORIZE_URL = "https://nestservices.google.com/partnerconnections/{project_id}/auth"
SCOPES = "https://www.googleapis.com/auth/sdm.service https://www.googleapis.com/auth/pubsub"
# Sandbox limits (PROTOCOLS.md §3.4): executeCommand 10 QPM per user; each trait command
# 5 QPM per device (held here for all of a device's commands together, to stay clear of
# the device-instance limit other projects share).
WRITE_LIMITS = WriteLimits(per_device=Rate(burst=5, every_s=12.0), per_account=Rate(10, 6.0))


class SdmAccount(AccountBase):
    """Google Smart Device Management: a Device Access project, an OAuth client and a
    refresh token (scopes sdm.service and pubsub), and the Pub/Sub pull subscription on
    the project's event topic."""

    provider: Literal["sdm"]
    api_url: str = API_URL
    project_id: str = Field(min_length=1)  # the Device Access project id
    client_id: str = Field(min_length=1)
    client_secret: SecretStr | None = None
    client_secret_credential: str | None = None
    refresh_token: SecretStr | None = None
    refresh_token_credential: str | None = None
    # true: no refresh token here; use the tokens `roost auth sdm` stored.
    use_stored_tokens: bool = False
    token_url: str = TOKEN_URL
    pubsub_url: str = PUBSUB_URL
    subscription: str = Field(pattern=r"^projects/[^/]+/subscriptions/[^/]+$")
    max_messages: int = Field(default=100, ge=1, le=1000)
    pull_timeout_s: float = Field(default=90, gt=0)

    @field_validator("token_url", "pubsub_url")
    @classmethod
    def _http_urls(cls, value: str) -> str:
        return cls._http_url(value)

    @field_validator("client_secret_credential", "refresh_token_credential")
    @classmethod
    def _credential_name(cls, value: str | None) -> str | None:
        return check_credential_name(value)

    @model_validator(mode="after")
    def _resolve_secrets(self) -> Self:
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
        return self


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
