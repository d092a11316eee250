"""From an account's settings to its provider. One entry per vendor; imports are lazy so a
daemon pays only for the vendors it uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING

from roost.clock import Clock, SystemClock
from roost.config import (
    AccountSettings,
    NestWebAccount,
    NestWwnAccount,
    NetatmoAccount,
    SdmAccount,
)
from roost.providers.base import (
    MemoryProviderMemory,
    MemoryTokenStore,
    Provider,
    ProviderMemory,
    TokenStore,
)

if TYPE_CHECKING:
    import httpx


@dataclass
class ProviderContext:
    """What the daemon lends a provider besides its settings."""

    clock: Clock = field(default_factory=SystemClock)
    tokens: TokenStore = field(default_factory=MemoryTokenStore)
    memory: ProviderMemory = field(default_factory=MemoryProviderMemory)
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def http_client(self, vendor: str, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
        """One HTTP client per vendor, shared by all its accounts: one connection pool and
        one TLS context (a client of its own costs an account ~0.8 MiB), no limit on
        connections (each account may hold a stream open), and no cookie jar (nothing of
        one account may reach another). `timeout` is the vendor's default; a provider
        whose timeouts differ per account sets them per request."""
        client = self._clients.get(vendor)
        if client is None:
            import httpx

            client = self._clients[vendor] = httpx.AsyncClient(
                timeout=timeout if timeout is not None else httpx.Timeout(5.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
                cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
                follow_redirects=False,
            )
        return client

    async def aclose(self) -> None:
        """Close the shared clients (after every provider has stopped)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def build_provider(account: AccountSettings, context: ProviderContext) -> Provider:
    if isinstance(account, NestWwnAccount):
        from roost.providers.nest_wwn import NestWwnProvider

        assert account.token is not None  # resolved by the settings' validation
        return NestWwnProvider(
            account.name,
            api_url=account.api_url,
            token=account.token.get_secret_value(),
            keepalive_timeout_s=account.keepalive_timeout_s,
            client=context.http_client("nest_wwn"),
        )
    if isinstance(account, NestWebAccount):
        from roost.providers.nest_web import NestWebProvider
        from roost.providers.nest_web.provider import HTTP_TIMEOUT as NEST_WEB_TIMEOUT
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
            client=context.http_client("nest_web", NEST_WEB_TIMEOUT),
        )
    if isinstance(account, NetatmoAccount):
        from roost.providers.netatmo import NetatmoProvider
        from roost.providers.netatmo.provider import HTTP_TIMEOUT as NETATMO_TIMEOUT

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
            client=context.http_client("netatmo", NETATMO_TIMEOUT),
        )
    if isinstance(account, SdmAccount):
        from roost.providers.sdm import SdmProvider
        from roost.providers.sdm.provider import HTTP_TIMEOUT as SDM_TIMEOUT

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
            client=context.http_client("sdm", SDM_TIMEOUT),
        )
    raise ValueError(f"no provider for {type(account).__name__}")
