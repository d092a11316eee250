"""A subscriber's inbox (`core.inbox.Inbox`) under the bus: order, back-pressure, dropping,
closing from either end, cancellation, and alarms that a full inbox does not hold back."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest

from roost.core.bus import Batch, Bus, Overflow
from roost.core.events import AttributeChanged, Event, SmokeAlarm
from roost.core.inbox import Inbox
from roost.core.model import AlarmState

pytestmark = pytest.mark.anyio

AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def change(n: int) -> AttributeChanged:
    return AttributeChanged(id=f"e{n}", at=AT, account="a", old=n, new=n + 1, attribute="humidity")


def smoke() -> SmokeAlarm:
    return SmokeAlarm(
        id="smoke", at=AT, account="a", device="p1", old=AlarmState.OK, new=AlarmState.EMERGENCY
    )


def ids(batches: object) -> list[str]:
    return [e.id for batch in batches for e in batch]  # type: ignore[attr-defined]


async def test_batches_come_out_in_the_order_they_were_published() -> None:
    bus = Bus()
    inbox = bus.subscribe("reader", buffer=8)
    for n in range(5):
        await bus.publish([change(n)])
    assert len(inbox) == 5
    assert [e.id for e in await inbox.receive()] == ["e0"]
    assert inbox.receive_nowait()[0].id == "e1"
    assert ids(inbox.take_all()) == ["e2", "e3", "e4"]
    assert inbox.take_all() == ()
    with pytest.raises(anyio.WouldBlock):
        inbox.receive_nowait()
    assert bus.backlog("reader") == (5, 0)


async def test_a_full_inbox_holds_its_publishers_in_order_and_loses_nothing() -> None:
    """BLOCK: a publisher waits for room; held publishers go in in the order they came,
    before a later publish that finds room, and a take of everything releases them all."""
    bus = Bus()
    inbox = bus.subscribe("engine", buffer=2)
    await bus.publish([change(0)])
    await bus.publish([change(1)])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for n in (2, 3, 4):
                tg.start_soon(bus.publish, [change(n)])
                await anyio.lowlevel.checkpoint()  # each is held, in turn
            assert bus.stats()["engine"].blocked == 3
            assert len(inbox) == 2
            assert inbox.receive_nowait()[0].id == "e0"
            assert len(inbox) == 2  # the oldest held one took its place
            assert ids(inbox.take_all()) == ["e1", "e2", "e3", "e4"]
    await bus.publish([change(5)])
    assert ids(inbox.take_all()) == ["e5"]
    assert bus.stats()["engine"].delivered == 6
    assert bus.stats()["engine"].dropped == 0


async def test_a_held_publisher_is_released_by_a_reader_waiting_for_room() -> None:
    bus = Bus()
    inbox = bus.subscribe("engine", buffer=1)
    seen: list[str] = []

    async def read() -> None:
        async for batch in inbox:
            seen.extend(e.id for e in batch)
            if len(seen) == 20:
                return

    with anyio.fail_after(5):  # a held publisher never released would hang here
        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for n in range(20):
                await bus.publish([change(n)])
    assert seen == [f"e{n}" for n in range(20)]


async def test_a_lagging_drop_subscriber_loses_batches_and_counts_them() -> None:
    bus = Bus()
    viewer = bus.subscribe("viewer", buffer=2, overflow=Overflow.DROP)
    engine = bus.subscribe("engine", buffer=8)
    for n in range(5):
        await bus.publish([change(n)])  # never held: the viewer drops
    assert ids(viewer.take_all()) == ["e0", "e1"]
    assert ids(engine.take_all()) == [f"e{n}" for n in range(5)]
    assert bus.stats()["viewer"].dropped == 3


async def test_an_alarm_reaches_the_taps_while_an_inbox_is_full() -> None:
    """The alerts tap the bus: a full inbox holds its publisher, but the alarm is already
    with the taps, and it reaches the held subscriber too once there is room."""
    bus = Bus()
    tapped: list[str] = []
    bus.tap("alerts", lambda batch: tapped.extend(e.id for e in batch))
    inbox = bus.subscribe("engine", buffer=1)
    await bus.publish([change(0)])
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.publish, [smoke()])
        await anyio.lowlevel.checkpoint()
        assert tapped == ["e0", "smoke"]  # held by the engine's inbox, not by the taps
        assert ids(inbox.take_all()) == ["e0", "smoke"]


async def test_a_reader_cancelled_while_it_waits_takes_nothing() -> None:
    inbox = Inbox[Batch](4)
    with anyio.move_on_after(0.01):
        await inbox.receive()
    assert inbox.put([change(0)])
    assert ids([await inbox.receive()]) == ["e0"]


async def test_a_held_put_cancelled_is_withdrawn() -> None:
    inbox = Inbox[Batch](1)
    assert inbox.put([change(0)])
    with anyio.move_on_after(0.01):
        await inbox.put_waiting([change(1)])
    assert ids(inbox.take_all()) == ["e0"]  # e1 was never put
    assert inbox.put([change(2)])
    assert ids(inbox.take_all()) == ["e2"]


async def test_the_bus_closing_ends_each_inbox_after_what_waits() -> None:
    bus = Bus()
    inbox = bus.subscribe("reader")
    await bus.publish([change(0)])
    got: list[str] = []

    async def read() -> None:
        async for batch in inbox:
            got.extend(e.id for e in batch)

    bus.close()
    with anyio.fail_after(1):
        await read()
    assert got == ["e0"]
    with pytest.raises(anyio.EndOfStream):
        await inbox.receive()
    with pytest.raises(anyio.ClosedResourceError):
        inbox.put([change(1)])


async def test_a_waiting_reader_wakes_when_the_bus_closes() -> None:
    bus = Bus()
    inbox = bus.subscribe("reader")
    async with anyio.create_task_group() as tg:

        async def read() -> None:
            with pytest.raises(anyio.EndOfStream):
                await inbox.receive()

        tg.start_soon(read)
        await anyio.lowlevel.checkpoint()
        bus.close()


async def test_a_reader_that_closes_its_inbox_is_dropped_by_the_bus() -> None:
    bus = Bus()
    inbox = bus.subscribe("viewer", buffer=1)
    other = bus.subscribe("engine")
    await bus.publish([change(0)])
    async with anyio.create_task_group() as tg:
        tg.start_soon(bus.publish, [change(1)])  # held by the viewer's full inbox
        await anyio.lowlevel.checkpoint()
        inbox.close()  # the held publisher goes on
    assert "viewer" not in bus.stats()
    await bus.publish([change(2)])
    assert ids(other.take_all()) == ["e0", "e1", "e2"]
    with pytest.raises(anyio.ClosedResourceError):
        await inbox.receive()
    with pytest.raises(anyio.ClosedResourceError):
        inbox.take_all()


async def test_an_inbox_used_as_a_context_closes_on_exit() -> None:
    bus = Bus()
    async with bus.subscribe("reader") as inbox:
        await bus.publish([change(0)])
    with pytest.raises(anyio.BrokenResourceError):
        inbox.put([change(1)])
    await bus.publish([change(1)])  # the bus drops it
    assert bus.stats() == {}


def test_an_inbox_holds_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Inbox[Event](0)
