"""From an account's settings to its provider. One entry per vendor; imports are lazy so a
daemon pays only for the vendors it uses."""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class ProviderContext:
    """What the daemon lends a provider besides its settings."""

    clock: Clock = field(default_factory=SystemClock)
    tokens: TokenStore = field(default_factory=MemoryTokenStore)
    memory: ProviderMemory = field(default_factory=MemoryProviderMemory)


def build_provider(account: AccountSettings, context: ProviderContext) -> Provider:
    if isinstance(account, NestWwnAccount):
        from roost.providers.nest_wwn import NestWwnProvider

        assert account.token is not None  # resolved by the settings' validation
        return NestWwnProvider(
            account.name,
            api_url=account.api_url,
            token=account.token.get_secret_value(),
            keepalive_timeout_s=account.keepalive_timeout_s,
        )
    if isinstance(account, NestWebAccount):
        from roost.providers.nest_web import NestWebProvider

        password, token = account.password, account.access_token  # resolved by validation
        return NestWebProvider(
            account.name,
            api_url=account.api_url,
            email=account.email,
            password=password.get_secret_value() if password is not None else None,
            access_token=token.get_secret_value() if token is not None else None,
            tokens=context.tokens,
            clock=context.clock,
            subscribe_timeout_s=account.subscribe_timeout_s,
        )
    if isinstance(account, NetatmoAccount):
        from roost.providers.netatmo import NetatmoProvider

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
        )
    if isinstance(account, SdmAccount):
        from roost.providers.sdm import SdmProvider

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
        )
    raise ValueError(f"no provider for {type(account).__name__}")
