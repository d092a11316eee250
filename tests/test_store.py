"""The SQLite store: schema, permissions, tokens that never tear, the outbox, the journal."""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from roost.cli.entry import main
from roost.core.bus import Bus
from roost.core.events import Delivery, NotificationOutcome
from roost.notify.notifier import Notification, Notifier, Target
from roost.simulator.sink import serve_sink
from roost.store.interface import StateStore
from roost.store.sqlite import FILE_NAME, MIGRATIONS, JournalEntry, Store, StoreError
from tests.test_store_contract import store_fixture  # noqa: F401  (SQLite and PostgreSQL)

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_new_store_is_owner_only_and_migrated(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "state")
    store.close()
    path = tmp_path / "state" / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    Store.open(tmp_path / "state").close()  # reopening migrates nothing and keeps working


def test_a_store_from_a_newer_roost_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    with sqlite3.connect(tmp_path / FILE_NAME) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this roost"):
        Store.open(tmp_path)


ROTATE = """
import anyio, sys
from pathlib import Path
from roost.providers.base import TokenSet
from roost.store.sqlite import Store

async def main():
    store = Store.open(Path(sys.argv[1]))
    held = await store.load_token("acct")
    n = int(held.access_token.removeprefix("access-")) if held else 0
    print("ready", flush=True)
    while True:
        n += 1
        await store.save_token("acct", TokenSet(f"access-{n}", f"refresh-{n}"))

anyio.run(main)
"""


def test_a_token_rotation_killed_midway_leaves_old_or_new_never_torn(tmp_path: Path) -> None:
    script = tmp_path / "rotate.py"
    script.write_text(textwrap.dedent(ROTATE))
    seen: list[int] = []
    for delay in (0.05, 0.13, 0.21, 0.34, 0.55):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "state")], stdout=subprocess.PIPE
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        store = Store.open(tmp_path / "state")
        tokens = anyio.run(store.load_token, "acct")
        store.close()
        assert tokens is not None
        access, refresh = tokens.access_token, tokens.refresh_token or ""
        assert access.removeprefix("access-") == refresh.removeprefix("refresh-")
        seen.append(int(access.removeprefix("access-")))
    assert seen == sorted(seen)  # a rotation never goes back to an older token
    assert seen[-1] > seen[0] > 0


async def collect(bus: Bus, outcomes: list[NotificationOutcome]) -> None:
    async for batch in bus.subscribe("test"):
        outcomes.extend(e for e in batch if isinstance(e, NotificationOutcome))


async def test_the_outbox_delivers_once_and_routes_by_tag(store: StateStore) -> None:
    bus = Bus()
    outcomes: list[NotificationOutcome] = []
    async with serve_sink() as everything, serve_sink() as urgent_only:
        targets = [Target(everything.url), Target(urgent_only.url, frozenset({"urgent"}))]
        notifier = Notifier(targets, bus, store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(notifier.run)
            tg.start_soon(collect, bus, outcomes)
            await notifier.submit(Notification("k1", "CO!", "get out", ("urgent",)))
            await notifier.submit(Notification("k1", "CO!", "get out", ("urgent",)))  # again
            await notifier.submit(Notification("k2", "Filter", "replace it"))
            with anyio.fail_after(10):
                await everything.wait_for(2)
                await urgent_only.wait_for(1)
            await anyio.sleep(0.3)
            tg.cancel_scope.cancel()
    assert sorted(p["title"] for p in everything.received) == ["CO!", "Filter"]
    assert [p["title"] for p in urgent_only.received] == ["CO!"]
    assert urgent_only.received[0]["_headers"]["x-roost-dedupe-key"] == "k1"
    assert await store.outbox_list() == []  # nothing pending, nothing dead
    assert sorted(o.key for o in outcomes if o.delivery is Delivery.DELIVERED) == ["k1", "k2"]


async def test_an_undeliverable_notification_retries_dies_and_can_be_retried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store.open(tmp_path)
    bus = Bus()
    outcomes: list[NotificationOutcome] = []
    async with serve_sink() as sink:
        url = sink.url
    # The sink is gone: its port refuses connections.
    notifier = Notifier(
        [Target(url)], bus, store, retry_for_s=0.6, retry_initial_s=0.05, retry_max_s=0.1
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(notifier.run)
        tg.start_soon(collect, bus, outcomes)
        await notifier.submit(Notification("lost-1", "Smoke!", "kitchen", created_at=_now()))
        with anyio.fail_after(10):
            while not any(o.delivery is Delivery.DEAD for o in outcomes):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    assert any(o.delivery is Delivery.RETRYING for o in outcomes)
    dead = await store.outbox_list()
    assert [(e.key, e.state) for e in dead] == [("lost-1", "dead")]
    assert dead[0].attempts >= 2
    store.close()

    config = tmp_path / "roost.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path}"\n')
    assert await anyio.to_thread.run_sync(main, ["outbox", "--config", str(config)]) == 0
    assert "dead     'Smoke!'" in capsys.readouterr().out
    assert (
        await anyio.to_thread.run_sync(
            main, ["outbox", "--config", str(config), "--retry", "lost-1"]
        )
        == 0
    )
    store = Store.open(tmp_path)
    assert [(e.key, e.state) for e in await store.outbox_list()] == [("lost-1", "pending")]
    async with serve_sink() as sink:
        notifier = Notifier([Target(sink.url)], Bus(), store)
        async with anyio.create_task_group() as tg:
            tg.start_soon(notifier.run)
            with anyio.fail_after(10):
                await sink.wait_for(1)
            tg.cancel_scope.cancel()
    assert sink.received[0]["title"] == "Smoke!"
    store.close()


def _now() -> datetime:
    return datetime.now(UTC)


async def test_calls_let_through_together_still_take_turns_on_the_connection(
    tmp_path: Path,
) -> None:
    """anyio before 4.14 could let two tasks through the store's CapacityLimiter(1) (a task
    reaching `acquire` while the freed token was on its way to a waiter got in too). Even
    then each transaction must have the connection to itself: here the limiter is widened
    on purpose and long transactions overlap in two worker threads."""
    store = Store.open(tmp_path)
    store._limiter = anyio.CapacityLimiter(4)  # what the old anyio did by accident
    entries = [JournalEntry(NOW, "temperature", "a", {"x": i}) for i in range(2000)]
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(store.journal_append, entries)
    assert len(await store.journal(limit=100_000)) == 4 * len(entries)
    store.close()
