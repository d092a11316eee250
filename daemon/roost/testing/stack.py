"""A whole simulated installation: a vendor's simulated cloud (`simulator/clouds.py`), a
push-notification sink and the daemon.

The demo, the end-to-end tests and the benchmarks all start from here, so they exercise
the same wiring as `roost run`: the daemon talks HTTP/SSE to the simulator over loopback
and apprise delivers to the sink over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from roost.config.settings import NotifyTarget, Settings
from roost.core.secret import Secret
from roost.providers.accounts import AccountBase
from roost.service.runtime import Runtime
from roost.simulator.clouds import ACCOUNT, DEMO_HOMES, STACK_VENDOR, VENDORS
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink


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


def stack_settings(
    rules_dir: Path, account: AccountBase, sink_url: str, state_dir: Path, dry_run: bool
) -> Settings:
    settings = Settings()
    settings.daemon.rules_dir = rules_dir
    settings.daemon.state_dir = state_dir
    settings.daemon.dry_run = dry_run
    settings.accounts = [account]
    settings.notify.targets = [NotifyTarget(url=Secret(sink_url), tags=[])]
    return settings


@asynccontextmanager
async def running_stack(
    rules_dir: Path,
    *,
    state_dir: Path,
    home: SimHome | None = None,
    vendor: str = STACK_VENDOR,
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
