"""A whole simulated installation: the Nest cloud, a push-notification sink and the daemon.

The demo, the end-to-end tests and the benchmarks all start from here, so they exercise
the same wiring as `roost run`: the daemon talks HTTP/SSE to the simulator over loopback
and apprise delivers to the sink over HTTP.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from pydantic import SecretStr

from roost.config.settings import AccountSettings, NotifyTarget, Settings
from roost.providers.nest_web import NestWebAccount
from roost.providers.nest_wwn import NestWwnAccount
from roost.providers.netatmo import NetatmoAccount
from roost.providers.sdm import SdmAccount
from roost.service.runtime import Runtime
from roost.simulator import nest_web, nest_wwn, netatmo, sdm
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink

ACCOUNT = "demo"
KEEPALIVE_S = 1.0


@dataclass
class Stack:
    home: SimHome
    cloud: Any  # the vendor simulator (e.g. NestWwnSimulator): its controls and write log
    sink: NotificationSink
    runtime: Runtime

    async def connected(self, timeout_s: float = 10.0) -> None:
        """Wait until the daemon holds the first full picture of the home."""
        with anyio.fail_after(timeout_s):
            await self.runtime.state.wait_baseline(ACCOUNT)


SimulatedAccount = AbstractAsyncContextManager[tuple[Any, AccountSettings]]


@asynccontextmanager
async def _nest_wwn(home: SimHome, physics_interval_s: float | None) -> AsyncIterator[Any]:
    async with nest_wwn.serve(
        home, keepalive_s=KEEPALIVE_S, physics_interval_s=physics_interval_s
    ) as cloud:
        account = NestWwnAccount(
            name=ACCOUNT,
            provider="nest_wwn",
            api_url=cloud.url,
            token=SecretStr(cloud.token),
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
            password=SecretStr(cloud.password),
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
            client_secret=SecretStr(cloud.client_secret),
            refresh_token=SecretStr(cloud.refresh_token),
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
            client_secret=SecretStr(cloud.client_secret),
            refresh_token=SecretStr(cloud.refresh_token),
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


def stack_settings(
    rules_dir: Path, account: AccountSettings, sink_url: str, state_dir: Path, dry_run: bool
) -> Settings:
    settings = Settings()
    settings.daemon.rules_dir = rules_dir
    settings.daemon.state_dir = state_dir
    settings.daemon.dry_run = dry_run
    settings.accounts = [account]
    settings.notify.targets = [NotifyTarget(url=SecretStr(sink_url), tags=[])]
    return settings


@asynccontextmanager
async def running_stack(
    rules_dir: Path,
    *,
    state_dir: Path,
    home: SimHome | None = None,
    vendor: str = "nest_wwn",
    physics_interval_s: float | None = None,
    dry_run: bool = False,
) -> AsyncIterator[Stack]:
    home = home or DEMO_HOMES.get(vendor, SimHome.demo)()
    async with (
        VENDORS[vendor](home, physics_interval_s) as (cloud, account),
        serve_sink() as sink,
        anyio.create_task_group() as tg,
    ):
        settings = stack_settings(rules_dir, account, sink.url, state_dir, dry_run)
        runtime = Runtime(settings)
        runtime.load_rules()
        tg.start_soon(runtime.run)
        try:
            yield Stack(home, cloud, sink, runtime)
        finally:
            tg.cancel_scope.cancel()
