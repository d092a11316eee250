"""The collector paced on the loop's clock and the CPU spent (service/collector.py): young
collections come on time even when a workload's allocations and deallocations balance
(CPython's own counter then never fires), an idle loop is not collected, and cycles that
died old are still reclaimed, by the full collection, at its period and not before.
CPython's automatic collections are off during each test, so every collection counted is
the pacer's."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import anyio
import pytest

from roost.service.collector import pace_collections


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


class Collections:
    """A `gc.callbacks` entry: how many collections of each generation."""

    def __init__(self) -> None:
        self.by_generation = [0, 0, 0]

    def reset(self) -> None:  # after a test's own collections
        self.by_generation = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            self.by_generation[info["generation"]] += 1


@pytest.fixture
def counted() -> Iterator[Collections]:
    seen = Collections()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(seen)
    try:
        yield seen
    finally:
        gc.callbacks.remove(seen)
        if was_enabled:
            gc.enable()


def old_cycle() -> weakref.ref[Node]:
    """A cycle that lived through two full collections (it is in the oldest generation),
    then died: no young or middle collection can reclaim it."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    gc.collect()
    gc.collect()
    return weakref.ref(a)


@pytest.mark.anyio
async def test_young_collections_come_on_time_while_allocations_balance(
    counted: Collections,
) -> None:
    homes = {n: [n] for n in range(2_000)}
    gc.collect()  # the old state is old
    counted.reset()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pace_collections, 0.001, 5, 3600.0, (0.01, 0.01))
        with anyio.move_on_after(0.5):
            while True:  # each new state replaces an old one: a net count of zero
                for n in homes:
                    homes[n] = [n]
                await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
    young, middle, full = counted.by_generation
    assert young + middle >= 20  # every 10 ms: about 50 in 0.5 s on a quiet machine
    assert middle >= 3  # every fifth
    assert young >= 3 * middle
    assert full == 0


@pytest.mark.anyio
async def test_an_idle_loop_is_not_collected(counted: Collections) -> None:
    counted.reset()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pace_collections, 0.2, 5, 3600.0, (0.01, 0.01))
        await anyio.sleep(0.5)  # 50 looks, far less than 0.2 s of CPU spent
        tg.cancel_scope.cancel()
    assert counted.by_generation == [0, 0, 0]


@pytest.mark.anyio
async def test_a_cycle_that_died_old_waits_for_the_full_collection(counted: Collections) -> None:
    dead = old_cycle()
    counted.reset()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pace_collections, 0.0, 2, 0.4, (0.01, 0.01))
        await anyio.sleep(0.2)
        assert dead() is not None  # young and middle collections do not walk the old
        assert counted.by_generation[2] == 0
        with anyio.fail_after(5):
            while dead() is not None:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert counted.by_generation[2] >= 1
