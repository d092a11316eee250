"""The store keeps the alarms roost pushed itself (notify/alerts.py), and a store that fails
costs that memory only: every alarm push and its clearing still go out at once, and each
failure is counted. A real SQLite store whose table is gone (a broken file, a bad restore),
and one whose reads another process holds up."""

from __future__ import annotations

import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from roost.core.bus import Bus
from roost.core.events import CoAlarm, Event
from roost.core.model import AlarmState
from roost.notify import alerts
from roost.notify.alerts import Alerts
from roost.notify.notifier import Notification
from roost.store.sqlite import FILE_NAME, Store

pytestmark = pytest.mark.anyio


def co(n: int, old: AlarmState | None, new: AlarmState) -> CoAlarm:
    return CoAlarm(
        id=f"home/alarm-hallway.co/{n}/co",
        at=datetime.now(UTC),
        account="home",
        structure="s1",
        device="alarm-hallway",
        old=old,
        new=new,
    )


def no_rule(event: Event) -> bool:
    return False


async def pushes(bus: Bus, watcher: Alerts, events: list[CoAlarm]) -> list[Notification]:
    sent: list[Notification] = []

    async def notify(alert: Notification) -> None:
        sent.append(alert)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run, notify, no_rule)
        for n, event in enumerate(events, start=1):
            await bus.publish([event])
            with anyio.fail_after(5):
                while len(sent) < n:
                    await anyio.sleep(0.01)
        with anyio.fail_after(5):
            while watcher.keep_errors < 1 + len(events):  # the read, then each write
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    return sent


async def test_a_failing_store_drops_no_alarm_push_and_counts_each_failure(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path)
    with sqlite3.connect(tmp_path / FILE_NAME) as conn:
        conn.execute("DROP TABLE alarms_pushed")
    try:
        bus = Bus()
        watcher = Alerts(bus, store)
        assert await watcher.restore() == 0
        assert watcher.keep_errors == 1
        events = [
            co(1, AlarmState.OK, AlarmState.EMERGENCY),
            co(2, AlarmState.EMERGENCY, AlarmState.OK),
        ]
        sent = await pushes(bus, watcher, events)
    finally:
        store.close()
    assert [n.title for n in sent] == [
        "CO emergency at alarm 'alarm-hallway'",
        "CO cleared at alarm 'alarm-hallway'",
    ]
    assert watcher.keep_errors == 3


async def test_the_kept_alarms_are_read_back_by_the_next_start(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        bus = Bus()
        first = Alerts(bus, store)
        assert await first.restore() == 0
        sent: list[Notification] = []

        async def notify(alert: Notification) -> None:
            sent.append(alert)

        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run, notify, no_rule)
            await bus.publish([co(1, AlarmState.OK, AlarmState.EMERGENCY)])
            with anyio.fail_after(5):
                while not await store.alarms_pushed():
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        again = Alerts(Bus(), store)
        assert await again.restore() == 1
        assert await store.alarms_pushed() == [("home", "alarm-hallway", "co")]
        assert first.keep_errors == again.keep_errors == 0
    finally:
        store.close()


# Another process holding SQLite's WAL read locks (bytes 123-127 of the -shm file, POSIX
# locks as SQLite takes them), as a process checkpointing or recovering the log holds them:
# no read can begin meanwhile. SQLite retries, then gives up after about 10 s.
HOLD_READS = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 123)
print("held", flush=True)
sys.stdin.read()
"""


async def test_a_store_held_up_at_start_costs_the_memory_not_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts, "KEEP_READ_S", 1.0)
    store = Store.open(tmp_path)
    try:
        await store.alarm_pushed_put("home", "alarm-hallway", "co")  # before the restart
        shm = tmp_path / f"{FILE_NAME}-shm"
        holder = await anyio.open_process([sys.executable, "-c", HOLD_READS, str(shm)])
        async with holder:
            assert holder.stdout is not None
            assert (await holder.stdout.receive()).strip() == b"held"
            watcher = Alerts(Bus(), store)
            started = time.monotonic()
            assert await watcher.restore() == 0  # the start goes on without the memory
            took = time.monotonic() - started
            holder.kill()
        assert took < 5, f"restore took {took:.1f} s"  # bound 1 s; SQLite's own ~10 s
        assert watcher.keep_errors == 1
        with anyio.fail_after(30):  # the lock gone, the memory is whole for the next start
            assert await store.alarms_pushed() == [("home", "alarm-hallway", "co")]
    finally:
        store.close()


async def test_a_fleet_worker_takes_over_the_kept_alarms_of_the_accounts_it_gains(
    tmp_path: Path,
) -> None:
    """Two workers on one store (SQLite here; the PostgreSQL one in tests/cluster): the one
    that gains an account reads what its last owner kept, and forgets what it kept itself
    about that account while it was away (cleared by the other since)."""
    store = Store.open(tmp_path)
    try:
        await store.alarm_pushed_put("home", "alarm-hallway", "co")  # by its last owner
        bus = Bus()
        heir = Alerts(bus, store)
        await store.alarm_pushed_put("other", "alarm-attic", "smoke")
        assert await heir.adopt(["home"]) == 1
        sent: list[Notification] = []

        async def notify(alert: Notification) -> None:
            sent.append(alert)

        async with anyio.create_task_group() as tg:
            tg.start_soon(heir.run, notify, no_rule)
            await bus.publish([co(2, AlarmState.EMERGENCY, AlarmState.OK)])
            with anyio.fail_after(5):
                while ("home", "alarm-hallway", "co") in await store.alarms_pushed():
                    await anyio.sleep(0.01)
            # the account goes away and comes back; meanwhile its alarm sounded and cleared
            # on the other worker, which pushed and forgot it
            await bus.publish([co(3, AlarmState.OK, AlarmState.EMERGENCY)])
            with anyio.fail_after(5):
                while ("home", "alarm-hallway", "co") not in await store.alarms_pushed():
                    await anyio.sleep(0.01)
            await store.alarm_pushed_delete("home", "alarm-hallway", "co")
            assert await heir.adopt(["home"]) == 0
            await bus.publish([co(4, AlarmState.EMERGENCY, AlarmState.OK)])
            await bus.publish([co(5, AlarmState.OK, AlarmState.WARNING)])  # a marker
            with anyio.fail_after(5):
                while len(sent) < 3:
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    finally:
        store.close()
    assert [n.title for n in sent] == [
        "CO cleared at alarm 'alarm-hallway'",
        "CO emergency at alarm 'alarm-hallway'",
        "CO warning at alarm 'alarm-hallway'",  # no second "cleared": the other worker's
    ]
    assert heir.keep_errors == 0


async def test_a_postgres_store_held_up_at_start_costs_the_memory_and_stays_usable(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read given up (another session holds the table locked) is cancelled inside
    psycopg: the start goes on at the bound, and the store's pooled connections still work
    once the lock is gone."""
    import psycopg

    from roost.store.postgres import PgStore

    monkeypatch.setattr(alerts, "KEEP_READ_S", 1.0)
    store = PgStore(pg_url)
    try:
        await store.alarm_pushed_put("home", "alarm-hallway", "co")  # before the restart
        with psycopg.connect(pg_url) as holder:
            holder.execute("LOCK TABLE alarms_pushed IN ACCESS EXCLUSIVE MODE")
            watcher = Alerts(Bus(), store)
            started = time.monotonic()
            with anyio.fail_after(10):  # (the lock is held until it returns)
                assert await watcher.restore() == 0  # the start goes on without the memory
            took = time.monotonic() - started
            holder.rollback()
        assert took < 3, f"restore took {took:.1f} s"
        assert watcher.keep_errors == 1
        with anyio.fail_after(10):  # the lock gone: reads and writes work again
            await store.alarm_pushed_put("home", "alarm-bedroom", "smoke")
            assert sorted(await store.alarms_pushed()) == [
                ("home", "alarm-bedroom", "smoke"),
                ("home", "alarm-hallway", "co"),
            ]
            assert await Alerts(Bus(), store).restore() == 2
    finally:
        await store.aclose()
