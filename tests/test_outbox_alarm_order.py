"""The outbox hands out alarm and urgent notifications before a backlog of ordinary ones,
in SQLite and in PostgreSQL: the notifier takes at most `limit` due entries a round, and
deliveries still in flight count against it, so a backlog in front kept an alarm out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from roost.notify.notifier import Notification, Priority
from roost.store.interface import StateStore
from tests.store_kit import store_fixture  # noqa: F401  (the `store` fixture)

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def add(store: StateStore, notification: Notification) -> None:
    assert await store.outbox_add(notification.key, notification.to_dict(), notification.created_at)


async def test_alarms_and_urgent_ones_come_before_an_older_backlog(store: StateStore) -> None:
    for n in range(30):
        at = NOW - timedelta(minutes=10) + timedelta(seconds=n)
        await add(store, Notification(f"chatter-{n}", f"chatter {n}", "", created_at=at))
    await add(store, Notification("co", "CO emergency", "", alarm=True, created_at=NOW))
    await add(
        store,
        Notification(
            "auth", "lost its authorization", "", priority=Priority.URGENT, created_at=NOW
        ),
    )
    due = [entry.key for entry in await store.outbox_due(NOW, limit=10)]
    assert due[:2] == ["co", "auth"] or due[:2] == ["auth", "co"], due
    assert due[2:] == [f"chatter-{n}" for n in range(8)]  # the rest oldest first
