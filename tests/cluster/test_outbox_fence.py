"""Notifications in a fleet are fenced like commands: every outbox write checks, in its own
transaction, the ownership epoch of the account's group, so a worker whose epoch is stale
writes nothing for the group even while its lock session is alive (an urgent notification
excepted: alarms fail open, and the group's owner delivers it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import anyio
import psycopg
import pytest

from roost.cluster.worker import ClusterWorker
from roost.config.settings import ClusterSettings
from roost.core.bus import Bus
from roost.providers.base import Provider
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.store.fence import Fenced
from roost.store.postgres import PgStore
from tests.provider_kit import make

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def note(key: str, account: str | None = "h0", priority: str = "normal") -> dict[str, object]:
    return {"title": key, "priority": priority, **({"account": account} if account else {})}


async def until(condition: Callable[[], bool], within: float = 15.0) -> None:
    with anyio.fail_after(within):
        while not condition():
            await anyio.sleep(0.05)


async def idle(provider: Provider) -> None:
    await anyio.sleep_forever()  # (its accounts are not streamed: only the outbox is under test)


@asynccontextmanager
async def owning_h0(pg_url: str) -> AsyncIterator[tuple[PgStore, ClusterWorker]]:
    """A worker "a" that owns account h0's group (its streams are not run)."""
    store = PgStore(pg_url)
    wwn = make(NestWwnProvider, "nest_wwn", name="h0", api_url="http://127.0.0.1:9", token="t")
    settings = ClusterSettings(worker="a", check_s=0.2, lock_timeout_s=2.0)
    worker = ClusterWorker(settings, store, HomeState(Bus(), EchoTracker()), [wwn])
    serve: Callable[[Provider], Awaitable[None]] = idle
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run, serve)
        await until(lambda: "h0" in worker.epochs)
        yield store, worker
        tg.cancel_scope.cancel()
    await store.aclose()


def pending(pg_url: str) -> dict[str, str]:
    """Pending outbox rows: key -> group."""
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT key, grp FROM outbox WHERE state = 'pending'").fetchall()
    return {str(k): str(g) for k, g in rows}


async def test_a_worker_with_a_stale_epoch_writes_no_notification_for_the_group(
    pg_url: str,
) -> None:
    async with owning_h0(pg_url) as (store, worker):
        assert await store.outbox_add("n1", note("n1"), NOW)
        assert pending(pg_url) == {"n1": "h0"}  # the row is the group's
        assert [e.key for e in await store.outbox_due(NOW)] == ["n1"]
        # another worker claims the group (a newer epoch); this one's lock session lives on
        # and its own view still says it owns the group: only the epoch check sees it
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("UPDATE cluster_groups SET epoch = epoch + 1, owner = 'b'")
        assert worker.epochs == {"h0": worker.epochs["h0"]}
        async with (await store.pool()).connection() as conn:
            await worker.check(conn)  # the lock session: alive (no Fenced)
        with pytest.raises(Fenced):
            await store.outbox_add("n2", note("n2"), NOW)
        assert await store.outbox_add("n3", note("n3", priority="urgent"), NOW)  # fails open
        assert await store.outbox_due(NOW) == []  # the group's rows are its owner's now
        await store.outbox_update(
            "n1", state="delivered", attempts=1, delivered_to=["x"], next_attempt_at=NOW
        )
        assert pending(pg_url) == {"n1": "h0", "n3": "h0"}  # nothing recorded: b sends them
        # a notification about no account is fenced by the lock session (alive)
        assert await store.outbox_add("n4", note("n4", account=None), NOW)
        assert pending(pg_url)["n4"] == ""


async def test_a_worker_with_a_stale_epoch_keeps_no_last_known_state_for_the_group(
    pg_url: str,
) -> None:
    """The baseline a takeover catches up from is the current owner's, never a stale one's."""
    async with owning_h0(pg_url) as (store, worker):
        await store.homes_put([("h0", '{"seen": 1}'), ("not-mine", '{"seen": 1}')], NOW)
        assert await store.homes() == {"h0": {"seen": 1}}
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("UPDATE cluster_groups SET epoch = epoch + 1, owner = 'b'")
        assert "h0" in worker.epochs  # (its own view is not told: only the epoch check sees it)
        await store.homes_put([("h0", '{"seen": 2}')], NOW)
        assert await store.homes() == {"h0": {"seen": 1}}
