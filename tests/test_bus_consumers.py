"""The bus's side readers (alerts, observer, event recorder) keep up with a flood.

The alerts and the observer tap the bus (`Bus.tap`): they see each batch as it is
published and cannot fall behind. The event recorder is a subscriber. A flood of rule
runs publishes hundreds of batches between two turns of the event loop, and an
`async for` over an inbox takes one batch per turn: such a reader fell behind until its
inbox was full, then held every publisher, and the held rule runs filled their rule's run
limit, so later runs were skipped (bench/stream_latency.py at 1,000 changes/s: 5,600 of
10,000 runs). A subscriber now takes every waiting batch on its turn
(`Inbox.take_all`); these floods would fill their inboxes many times over.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from roost.core.bus import Batch, Bus
from roost.core.events import AccountStatus, AttributeChanged, ConnectionState
from roost.notify import alerts
from roost.notify.notifier import Notification
from roost.service.observe import Observer
from roost.service.recorder import EventRecorder
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState

pytestmark = pytest.mark.anyio

PER_TURN = 200  # batches published between two turns of the loop
TURNS = 100  # 20,000 batches: five times an inbox of 4,096


def change(n: int) -> AttributeChanged:
    return AttributeChanged(
        id=f"e{n}", at=datetime.now(UTC), account="a", old=n, new=n + 1, attribute="humidity"
    )


def lost(account: str) -> AccountStatus:
    return AccountStatus(
        id=f"lost-{account}",
        at=datetime.now(UTC),
        account=account,
        state=ConnectionState.AUTH_FAILED,
        detail="token revoked",
    )


async def flood(
    bus: Bus, reader: Callable[[], Awaitable[None]], name: str, *, held_at_most: int = 0
) -> int:
    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.sleep(0.05)
        n = 0
        for _ in range(TURNS):
            for _ in range(PER_TURN):
                await bus.publish([change(n)])
                n += 1
            await anyio.lowlevel.checkpoint()  # one turn of the loop for everyone else
        with anyio.fail_after(5):
            while bus.backlog(name)[1]:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert bus.stats()[name].blocked <= held_at_most
    assert bus.stats()[name].delivered == PER_TURN * TURNS
    return bus.stats()[name].blocked


async def test_the_alerts_see_every_event_as_it_is_published() -> None:
    """The alerts tap the bus: a flood never holds a publisher, and an account's lost
    authorization in the middle of it is sent."""
    bus = Bus()
    watcher = alerts.Alerts(bus)
    sent: list[Notification] = []

    async def notify(alert: Notification) -> None:
        sent.append(alert)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run, notify)
        for turn in range(TURNS):
            for n in range(PER_TURN):
                await bus.publish([change(turn * PER_TURN + n)])
            if turn == TURNS // 2:
                await bus.publish([lost("b")])
            await anyio.lowlevel.checkpoint()
        with anyio.fail_after(5):
            while not sent:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert [a.account for a in sent] == ["b"]  # only a lost authorization is an alert
    assert "lost its authorization" in sent[0].title


async def test_the_observer_sees_every_event_as_it_is_published() -> None:
    bus = Bus()
    observer = Observer(bus)
    for n in range(PER_TURN * TURNS):
        await bus.publish([change(n)])
    assert observer.events["attribute"] == PER_TURN * TURNS  # no task had to run
    assert bus.stats() == {}  # nothing subscribed: nobody to hold the publisher


async def test_a_tap_that_fails_does_not_stop_the_publisher() -> None:
    bus = Bus()
    seen: list[str] = []

    def broken(batch: Batch) -> None:
        raise RuntimeError("a reader's bug")

    bus.tap("broken", broken)
    bus.tap("after", lambda batch: seen.extend(e.id for e in batch))
    inbox = bus.subscribe("engine")
    await bus.publish([change(0)])
    await bus.publish([change(1)])
    assert seen == ["e0", "e1"]  # the taps after it still see every batch, in order
    assert [e.id for batch in inbox.take_all() for e in batch] == ["e0", "e1"]


async def test_the_event_recorder_keeps_up_and_keeps_the_order(tmp_path: Path) -> None:
    bus = Bus()
    path = tmp_path / "events.jsonl"
    recorder = EventRecorder(path, HomeState(bus, EchoTracker()), bus)
    # Its file writes run in a worker thread, which a busy machine may hold for a few turns;
    # one batch per turn would hold the publisher thousands of times.
    await flood(bus, lambda: recorder.run([]), "recorder", held_at_most=20)
    ids = [json.loads(line)["event"]["id"] for line in path.read_text().splitlines()]
    assert ids == [f"e{n}" for n in range(PER_TURN * TURNS)]


async def test_the_event_recorder_writes_what_it_took_when_stopped(tmp_path: Path) -> None:
    """A stop that comes while the recorder hands its lines to the worker thread: the
    lines it took from its inbox are still written."""
    bus = Bus()
    path = tmp_path / "events.jsonl"
    recorder = EventRecorder(path, HomeState(bus, EchoTracker()), bus)
    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run, [])
        await anyio.sleep(0.05)
        await bus.publish([change(0)])
        while bus.backlog("recorder")[1]:  # taken, and on its way to the thread
            await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    ids = [json.loads(line)["event"]["id"] for line in path.read_text().splitlines()]
    assert ids == ["e0"]
