"""From an account's settings to its provider. One entry per vendor; imports are lazy so a
daemon pays only for the vendors it uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.clock import Clock, SystemClock
from roost.config import AccountSettings, NestWwnAccount
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
    raise ValueError(f"no provider for {type(account).__name__}")
