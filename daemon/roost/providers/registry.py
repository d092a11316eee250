"""The vendors roost knows, and from an account's settings to its provider.

Each vendor is one package, `providers/<vendor>/`, whose `__init__` is its boundary: the
account settings model (`Account`), its endpoints and defaults, its OAuth app (`oauth`,
or None), its `WRITE_LIMITS` and `build(account, context)`. Adding a vendor means adding
its package, its name here and a simulator front. Provider modules are imported only by
`build`, so a daemon pays only for the vendors it uses.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, Any, Protocol, cast

from roost.core.clock import Clock, SystemClock
from roost.providers.accounts import AccountBase
from roost.providers.base import (
    MemoryProviderMemory,
    MemoryTokenStore,
    OAuthApp,
    Provider,
    ProviderMemory,
    RequestDeadlines,
    TokenStore,
    WriteLimits,
)

if TYPE_CHECKING:
    import httpx

VENDORS = ("nest_wwn", "nest_web", "netatmo", "sdm")
DEMO_VENDOR = "sdm"  # `roost demo`'s simulated cloud unless --vendor says otherwise


class Vendor(Protocol):
    Account: type[AccountBase]
    WRITE_LIMITS: WriteLimits
    oauth: Callable[[Any], OAuthApp] | None

    def build(self, account: Any, context: ProviderContext) -> Provider: ...


class OwnLogin(Protocol):
    """A vendor whose `roost auth` is a login of its own rather than an OAuth app's."""

    def add_login_arguments(self, auth: Any) -> None: ...

    def login_command(self, args: argparse.Namespace) -> int: ...


def vendor(name: str) -> Vendor:
    if name not in VENDORS:
        raise ValueError(f"no vendor {name!r} (known: {', '.join(VENDORS)})")
    return cast(Vendor, importlib.import_module(f"roost.providers.{name}"))


def auth_advice(name: str) -> str:
    """What to do when an account of vendor `name` is no longer authorized."""
    try:
        return getattr(vendor(name), "AUTH_ADVICE", "renew its credentials")
    except ValueError:
        return "renew its credentials"


def account_models() -> tuple[type[AccountBase], ...]:
    """Every vendor's account settings model, for the settings' account union."""
    return tuple(vendor(name).Account for name in VENDORS)


@dataclass
class ProviderContext:
    """What the daemon lends a provider besides its settings."""

    clock: Clock = field(default_factory=SystemClock)
    tokens: TokenStore = field(default_factory=MemoryTokenStore)
    memory: ProviderMemory = field(default_factory=MemoryProviderMemory)
    deadlines: RequestDeadlines = field(default_factory=RequestDeadlines)  # per request, in all
    _clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def http_client(self, vendor: str, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
        """One HTTP client per vendor, shared by all its accounts: one connection pool and
        the process's one TLS context (`tls.client_context`: a trust store of its own costs
        ~0.8 MiB), no limit on connections (each account may hold a stream open), and no
        cookie jar (nothing of one account may reach another). `timeout` is the vendor's
        default; a provider whose timeouts differ per account sets them per request."""
        client = self._clients.get(vendor)
        if client is None:
            import httpx

            from roost.providers.tls import client_context

            client = self._clients[vendor] = httpx.AsyncClient(
                verify=client_context(),
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


def build_provider(account: AccountBase, context: ProviderContext) -> Provider:
    return vendor(account.provider).build(account, context)
