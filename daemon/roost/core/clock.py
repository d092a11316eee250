"""Time, as the daemon sees it: the system clock in production, a virtual one in tests.

Everything that waits or measures (cooldowns, holds, delays, schedules, retries, command
deadlines) asks a `Clock`, so a rule test can advance an hour without sleeping.

A rule run reads the wall clock once for its first synchronous stretch (from admission to
its first real wait): its trace's start, its end if it never waited, its commands'
`issued_at` and the outcomes `Dispatcher.submit` decides at once (dry run, guard refusal)
share that reading, passed along as `now`; once the run has waited, readings are fresh.
Durations are measured on the monotonic clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for durations and deadlines)."""

    async def sleep(self, seconds: float) -> None:
        """Wait this long on this clock."""


class SystemClock:
    # C callables, read several times per rule run: no Python frame per reading.
    now = staticmethod(partial(datetime.now, UTC))
    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that only moves when told to. Sleepers wake in due order as it advances."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        self._monotonic = 0.0
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = anyio.Event()
        heapq.heappush(self._sleepers, (self._monotonic + seconds, next(self._order), wake))
        await wake.wait()

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its own due time, in order."""
        target = self._monotonic + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            due, _, wake = heapq.heappop(self._sleepers)
            self._step_to(due)
            wake.set()
            await settle()
        self._step_to(target)
        await settle()

    def _step_to(self, monotonic: float) -> None:
        delta = monotonic - self._monotonic
        if delta > 0:
            self._monotonic = monotonic
            self._now += timedelta(seconds=delta)

    def jump_wall_clock(self, delta: timedelta) -> None:
        """The wall clock jumps (NTP, DST bugs); monotonic time does not."""
        self._now += delta


async def settle() -> None:
    """Let every runnable task run until they are all waiting again."""
    if _on_asyncio():
        await _settle_asyncio()
    else:
        await anyio.wait_all_tasks_blocked()


def _on_asyncio() -> bool:
    try:
        return asyncio.current_task() is not None
    except RuntimeError:
        return False


async def _settle_asyncio(rounds: int = 10_000) -> None:
    # anyio's wait_all_tasks_blocked sleeps 0.1 s whenever a task is runnable; a virtual
    # clock test advances time hundreds of times, so yield to the loop instead.
    this = asyncio.current_task()
    for _ in range(rounds):
        await asyncio.sleep(0)
        if all(t is this or _waiting(t) for t in asyncio.all_tasks()):
            return
    await anyio.wait_all_tasks_blocked()


def _waiting(task: asyncio.Task[object]) -> bool:
    waiter = getattr(task, "_fut_waiter", None)
    return waiter is not None and not waiter.done()
