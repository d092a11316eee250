"""What roost keeps and for how long: delivered notifications are forgotten after
`daemon.outbox_keep_days` (given-up and pending ones stay), and the event recording is
reopened on SIGHUP so that logrotate can move it away."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from roost.core.bus import Bus
from roost.core.events import Started
from roost.core.ids import new_id
from roost.service.recorder import EventRecorder
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.store.sqlite import Store

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_only_old_delivered_notifications_are_pruned(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    for key in ("old-delivered", "new-delivered", "old-dead", "pending"):
        await store.outbox_add(key, {"title": key}, NOW - timedelta(days=10))
    for key, state, finished in (
        ("old-delivered", "delivered", NOW - timedelta(days=8)),
        ("new-delivered", "delivered", NOW - timedelta(days=1)),
        ("old-dead", "dead", NOW - timedelta(days=8)),
    ):
        await store.outbox_update(
            key, state=state, attempts=1, delivered_to=[], next_attempt_at=finished,
            finished_at=finished,
        )  # fmt: skip
    assert await store.outbox_prune(NOW - timedelta(days=7)) == 1
    left = {e.key for e in await store.outbox_list(("pending", "delivered", "dead"))}
    assert left == {"new-delivered", "old-dead", "pending"}
    store.close()


async def test_the_recording_is_reopened_after_logrotate_moved_it(tmp_path: Path) -> None:
    bus = Bus()
    path = tmp_path / "events.jsonl"
    recorder = EventRecorder(path, HomeState(bus, EchoTracker()), bus)

    async def started() -> None:
        await bus.publish([Started(id=new_id(), at=datetime.now(UTC), account="")])

    def events(file: Path) -> int:
        return sum(json.loads(line)["kind"] == "event" for line in file.read_text().splitlines())

    async with anyio.create_task_group() as tg:
        tg.start_soon(recorder.run, [])
        await started()
        with anyio.fail_after(5):
            while not path.exists() or events(path) < 1:
                await anyio.sleep(0.02)
        path.rename(tmp_path / "events.jsonl.1")  # what logrotate does
        recorder.reopen()  # what SIGHUP does
        await started()
        with anyio.fail_after(5):
            while not path.exists() or events(path) < 1:
                await anyio.sleep(0.02)
        tg.cancel_scope.cancel()
    assert events(tmp_path / "events.jsonl.1") == 1
    assert events(path) == 1
