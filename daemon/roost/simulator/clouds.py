"""Each vendor's simulated cloud for a home, and the account settings that reach it: what
a simulated installation (`stack.py`), `roost sim` and the tests start from.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from roost.core.secret import Secret
from roost.providers.accounts import AccountBase
from roost.providers.nest_web import NestWebAccount
from roost.providers.nest_wwn import NestWwnAccount
from roost.providers.netatmo import NetatmoAccount
from roost.providers.sdm import SdmAccount
from roost.simulator import nest_web, nest_wwn, netatmo, sdm
from roost.simulator.home import SimHome

ACCOUNT = "demo"
KEEPALIVE_S = 1.0
STACK_VENDOR = "nest_wwn"  # a simulated installation's cloud unless told otherwise


SimulatedAccount = AbstractAsyncContextManager[tuple[Any, AccountBase]]


@asynccontextmanager
async def _nest_wwn(home: SimHome, physics_interval_s: float | None) -> AsyncIterator[Any]:
    async with nest_wwn.serve(
        home, keepalive_s=KEEPALIVE_S, physics_interval_s=physics_interval_s
    ) as cloud:
        account = NestWwnAccount(
            name=ACCOUNT,
            provider="nest_wwn",
            api_url=cloud.url,
            token=Secret(cloud.token),
            keepalive_timeout_s=1.5 * KEEPALIVE_S,
        )
        yield cloud, account


@asynccontextmanager
async def _nest_web(home: SimHome, physics_interval_s: float | None) -> AsyncIterator[Any]:
    async with nest_web.serve(home, hold_s=2.0, physics_interval_s=physics_interval_s) as cloud:
        account = NestWebAccount(
            name=ACCOUNT,
            provider="nest_web",
            api_url=cloud.url,
            email=cloud.email,
            password=Secret(cloud.password),
            subscribe_timeout_s=5.0,
        )
        yield cloud, account


@asynccontextmanager
async def _netatmo(home: SimHome, physics_interval_s: float | None) -> AsyncIterator[Any]:
    async with netatmo.serve(home, physics_interval_s=physics_interval_s) as cloud:
        port = _free_port()  # the provider registers its webhook receiver here
        account = NetatmoAccount(
            name=ACCOUNT,
            provider="netatmo",
            api_url=cloud.url,
            client_id=cloud.client_id,
            client_secret=Secret(cloud.client_secret),
            refresh_token=Secret(cloud.refresh_token),
            fast_poll_s=1.0,
            slow_poll_s=2.0,
            webhook_listen=f"127.0.0.1:{port}",
            webhook_url=f"http://127.0.0.1:{port}/netatmo",
        )
        yield cloud, account


@asynccontextmanager
async def _sdm(home: SimHome, physics_interval_s: float | None) -> AsyncIterator[Any]:
    async with sdm.serve(home, pull_wait_s=5.0, physics_interval_s=physics_interval_s) as cloud:
        account = SdmAccount(
            name=ACCOUNT,
            provider="sdm",
            api_url=cloud.api_url,
            token_url=cloud.token_url,
            pubsub_url=cloud.pubsub_url,
            project_id=cloud.names.project_id,
            client_id=cloud.client_id,
            client_secret=Secret(cloud.client_secret),
            refresh_token=Secret(cloud.refresh_token),
            subscription=cloud.subscription.name,
            pull_timeout_s=10.0,
        )
        yield cloud, account


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# vendor name → a simulated cloud for a home, and the account settings that reach it.
VENDORS: dict[str, Callable[[SimHome, float | None], SimulatedAccount]] = {
    "nest_wwn": _nest_wwn,
    "nest_web": _nest_web,
    "netatmo": _netatmo,
    "sdm": _sdm,
}

# vendor name → its demo home, where SimHome.demo() does not suit the vendor's devices.
DEMO_HOMES: dict[str, Callable[[], SimHome]] = {"sdm": sdm.demo_home}
