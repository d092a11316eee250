"""How long a save of the dirty homes holds the event loop (what (f)'s p99 feels each second).

    .venv/bin/python bench/save_stall.py [--dirty 200] [--rounds 15]

At 200 changes/s spread over 10,000 accounts about 200 homes are dirty when the persister
saves them, once a second. This process holds that many homes of 2 thermostats in a real
`HomeState`, marks them dirty and runs `Persister._save_dirty` into a real SQLite store,
while a ticker sleeps 0.5 ms at a time on the same loop: the worst lateness of a tick is
how long the loop stood still. Figures: median (min, max) over the rounds, and how long
the save took. Wall clock: compare trees alternated, on the same machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio

from common import build_devices, header, load, quiet_logging
from roost.core.bus import Bus
from roost.core.clock import SystemClock
from roost.core.model import Home
from roost.service.persist import Persister
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.store.sqlite import Store

TICK_S = 0.0005


async def rounds(dirty: int, count: int) -> tuple[list[float], list[float]]:
    worst: list[float] = []
    took: list[float] = []
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as state_dir:
        store = Store.open(Path(state_dir))
        bus = Bus()
        state = HomeState(bus, EchoTracker(clock=SystemClock()))
        persister = Persister(store, state, bus, SystemClock())
        structures, devices = build_devices(2)
        now = datetime.now(UTC)
        accounts = [f"account-{i}" for i in range(dirty)]
        for account in accounts:
            await state.snapshot(account, Home(account, structures, devices), now)
        for _ in range(count):
            state.dirty = set(accounts)
            late = [0.0]
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_tick, late)
                await anyio.sleep(0.01)
                started = time.perf_counter()
                await persister._save_dirty()
                took.append(time.perf_counter() - started)
                await anyio.sleep(0.005)
                tasks.cancel_scope.cancel()
            worst.append(late[0])
        await store.aclose()
    return worst, took


async def _tick(late: list[float]) -> None:
    """Sleep TICK_S at a time; `late[0]`: the longest a wake-up came after its time."""
    while True:
        started = time.perf_counter()
        await anyio.sleep(TICK_S)
        late[0] = max(late[0], time.perf_counter() - started - TICK_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dirty", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    quiet_logging(args.log_level)
    header("save_stall: the loop while the dirty homes are saved", f"{args.dirty} dirty homes")
    worst, took = anyio.run(rounds, args.dirty, args.rounds)
    ms = [w * 1e3 for w in worst]
    print(
        f"   worst tick lateness: median {statistics.median(ms):.2f} ms "
        f"(min {min(ms):.2f}, max {max(ms):.2f}); the save took "
        f"{statistics.median(took) * 1e3:.1f} ms (median)"
    )
    print(f"   {load()} at end")


if __name__ == "__main__":
    main()
