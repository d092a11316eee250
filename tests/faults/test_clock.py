"""A wall-clock jump (NTP, a dead RTC battery) neither stalls nor floods deliveries."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import anyio
import pytest

from roost.core.bus import Bus
from roost.core.clock import VirtualClock
from roost.notify.notifier import Notification, Notifier, Target
from roost.simulator.sink import serve_sink
from roost.store.sqlite import Store
from tests.faults.harness import TALLY

pytestmark = pytest.mark.anyio


async def test_a_backwards_wall_clock_jump_does_not_stall_a_retry(tmp_path: Path) -> None:
    clock = VirtualClock()
    store = Store.open(tmp_path)
    async with serve_sink() as sink:
        url = sink.url
    # First attempt fails (the sink is down): a retry is planned a few seconds ahead.
    notifier = Notifier([Target(url)], Bus(), store, clock=clock, retry_max_s=10, poll_s=0.1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(notifier.run)
        await notifier.submit(Notification("jump-1", "Smoke!", "", created_at=clock.now()))
        with anyio.fail_after(5):
            while not (entries := await store.outbox_list()) or entries[0].attempts == 0:
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    clock.jump_wall_clock(-timedelta(hours=2))  # the retry now looks two hours away
    TALLY.faults["wall clock jumped back 2 h"] += 1
    async with serve_sink() as sink:
        notifier = Notifier(
            [Target(sink.url)], Bus(), store, clock=clock, retry_max_s=10, poll_s=0.1
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(notifier.run)
            try:
                with anyio.fail_after(5):
                    await sink.wait_for(1)
            except TimeoutError:
                TALLY.notifications_lost += 1
                raise
            tg.cancel_scope.cancel()
    assert [p["title"] for p in sink.received] == ["Smoke!"]
    store.close()
