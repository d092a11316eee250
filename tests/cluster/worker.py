"""A fleet worker for the failover tests: owns its share of N groups (one account each),
records one fenced "send" per owned group every tick, and on gaining a group takes over
its pending outbox rows. Prints a line per gain/loss (read by the test)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import anyio
from psycopg_pool import AsyncConnectionPool

from roost.cluster.ownership import Ownership
from roost.store import fence

ACCOUNTS_MAX = 100_000


async def main(url: str, worker: str, groups: int, tick_s: float) -> None:
    names = [f"acct-{i:04d}" for i in range(groups)]
    pool = AsyncConnectionPool(url, min_size=2, max_size=4, kwargs={"autocommit": True}, open=False)
    await pool.open()
    serial = 0

    gained_tx, gained_rx = anyio.create_memory_object_stream[tuple[str, int]](ACCOUNTS_MAX)

    async def gain(group: str, epoch: int) -> None:
        print(f"gain {group} {epoch}", flush=True)
        gained_tx.send_nowait((group, epoch))

    async def take_over() -> None:
        """The new owner's catch-up: its pending outbox rows and timers."""
        async for group, epoch in gained_rx:
            for key in await fence.pending_outbox(pool, group):
                try:
                    await fence.outbox_finish(pool, group, epoch, key, "delivered", _now())
                except fence.Fenced:
                    break
            for timer in await fence.adopt_timers(pool, worker, [group]):
                print(f"timers {group} {timer[0]}", flush=True)

    async def lose(group: str) -> None:
        print(f"lose {group}", flush=True)

    limit = anyio.CapacityLimiter(4)

    async def send(group: str, epoch: int, key: str) -> None:
        """One fenced command and one fenced notification for the group's account."""
        async with limit:
            try:
                await fence.command(pool, group, epoch, worker, key, group, {})
                await fence.outbox_add(pool, group, epoch, key, {}, _now())
            except fence.Fenced:
                print(f"fenced {group} {epoch}", flush=True)

    ownership = Ownership(url, worker, names, gain, lose, check_s=0.3, timeout_s=2.0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(ownership.run)
        tg.start_soon(take_over)
        print("ready", flush=True)
        while True:
            await anyio.sleep(tick_s)
            serial += 1
            async with anyio.create_task_group() as writes:
                for group, epoch in list(ownership.owned.items()):
                    writes.start_soon(send, group, epoch, f"{worker}-{serial}-{group}")


def _now() -> datetime:
    return datetime.now(UTC)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
