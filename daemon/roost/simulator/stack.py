"""A whole simulated installation: the Nest cloud, a push-notification sink and the daemon.

The demo, the end-to-end tests and the benchmarks all start from here, so they exercise
the same wiring as `roost run`: the daemon talks HTTP/SSE to the simulator over loopback
and apprise delivers to the sink over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from pydantic import SecretStr

from roost.config import AccountSettings, NestWwnAccount, NotifyTarget, Settings
from roost.runtime import Runtime
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink

ACCOUNT = "demo"


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
        home, keepalive_s=2.0, physics_interval_s=physics_interval_s
    ) as cloud:
        account = NestWwnAccount(
            name=ACCOUNT,
            provider="nest_wwn",
            api_url=cloud.url,
            token=SecretStr(cloud.token),
            keepalive_timeout_s=5.0,
        )
        yield cloud, account


# vendor name → a simulated cloud for a home, and the account settings that reach it.
VENDORS: dict[str, Callable[[SimHome, float | None], SimulatedAccount]] = {
    "nest_wwn": _nest_wwn,
}


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
    home = home or SimHome.demo()
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
