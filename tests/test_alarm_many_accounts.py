"""Many accounts raise CO at the same moment, beside a flood of ordinary pushes from the
same daemon: every alarm reaches the sink at once, through a real `roost run`."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import serve_sink
from tests.faults.harness import RULES, Daemon, wait_for

pytestmark = pytest.mark.anyio

ACCOUNTS = 5
ALARM = "alarm-hallway"
CO_TITLE = "CO emergency in the Hallway"


async def test_every_account_s_co_alarm_arrives_at_once(tmp_path: Path) -> None:
    homes = [SimHome.demo() for _ in range(ACCOUNTS)]
    async with serve_sink() as sink, AsyncExitStack() as stack:
        clouds = [await stack.enter_async_context(nest_wwn.serve(h)) for h in homes]
        arrivals: list[float] = []
        sink.on_receive = lambda p: (
            arrivals.append(time.monotonic()) if p.get("title") == CO_TITLE else None
        )
        accounts = "".join(
            f'\n[[accounts]]\nname = "home{n}"\nprovider = "nest_wwn"\napi_url = "{c.url}"\n'
            f'token = "{c.token}"\nkeepalive_timeout_s = 30\n'
            for n, c in enumerate(clouds)
        )
        config = tmp_path / "roost.toml"
        config.write_text(
            f'[daemon]\nrules_dir = "{RULES}"\nstate_dir = "{tmp_path / "state"}"\n'
            '[log]\nlevel = "info"\nformat = "json"\n'
            f'[[notify.targets]]\nurl = "{sink.url}"\n{accounts}'
        )
        daemon = Daemon(config, tmp_path / "daemon.log")
        await daemon.start()
        try:
            await wait_for(lambda: daemon.log().count('"state": "connected"') >= ACCOUNTS, 30)
            await wait_for(lambda: '"event": "ready"' in daemon.log())
            for home in homes:  # ordinary pushes first: everyone leaves (the README's rules)
                for structure in home.structures:
                    home.set_away(structure, True)
            raised = time.monotonic()
            for home in homes:
                home.set_co(ALARM, "emergency")
            await wait_for(lambda: len(arrivals) >= ACCOUNTS, timeout_s=15)
            latest = max(arrivals) - raised
            print(f"{ACCOUNTS} CO pushes, the last {latest:.3f} s after the raise")
            assert latest < 3.0, latest
            await anyio.sleep(0.5)
            assert len(arrivals) == ACCOUNTS
        finally:
            await daemon.stop()
