"""A whole simulated installation: the Nest cloud, a push-notification sink and the daemon.

The demo, the end-to-end tests and the benchmarks all start from here, so they exercise
the same wiring as `roost run`: the daemon talks HTTP/SSE to the simulator over loopback
and apprise delivers to the sink over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
from pydantic import SecretStr

from roost.config import NestWwnAccount, NotifyTarget, Settings
from roost.runtime import Runtime
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink

ACCOUNT = "demo"


@dataclass
class Stack:
    home: SimHome
    cloud: nest_wwn.NestWwnSimulator
    sink: NotificationSink
    runtime: Runtime

    async def connected(self, timeout_s: float = 10.0) -> None:
        """Wait until the daemon holds the first full picture of the home."""
        with anyio.fail_after(timeout_s):
            await self.runtime.state.wait_baseline(ACCOUNT)


def stack_settings(
    rules_dir: Path, cloud_url: str, token: str, sink_url: str, state_dir: Path, dry_run: bool
) -> Settings:
    settings = Settings()
    settings.daemon.rules_dir = rules_dir
    settings.daemon.state_dir = state_dir
    settings.daemon.dry_run = dry_run
    settings.accounts = [
        NestWwnAccount(
            name=ACCOUNT,
            provider="nest_wwn",
            api_url=cloud_url,
            token=SecretStr(token),
            keepalive_timeout_s=5.0,
        )
    ]
    settings.notify.targets = [NotifyTarget(url=SecretStr(sink_url), tags=[])]
    return settings


@asynccontextmanager
async def running_stack(
    rules_dir: Path,
    *,
    state_dir: Path,
    home: SimHome | None = None,
    keepalive_s: float = 2.0,
    physics_interval_s: float | None = None,
    dry_run: bool = False,
) -> AsyncIterator[Stack]:
    home = home or SimHome.demo()
    async with (
        nest_wwn.serve(
            home, keepalive_s=keepalive_s, physics_interval_s=physics_interval_s
        ) as cloud,
        serve_sink() as sink,
        anyio.create_task_group() as tg,
    ):
        settings = stack_settings(rules_dir, cloud.url, cloud.token, sink.url, state_dir, dry_run)
        runtime = Runtime(settings)
        runtime.load_rules()
        tg.start_soon(runtime.run)
        try:
            yield Stack(home, cloud, sink, runtime)
        finally:
            tg.cancel_scope.cancel()
