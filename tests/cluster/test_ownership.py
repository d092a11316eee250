"""Ownership of account groups by advisory locks, on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import anyio
import psycopg
import pytest
from prometheus_client.core import CollectorRegistry, Metric
from prometheus_client.exposition import generate_latest
from psycopg_pool import AsyncConnectionPool

from roost.cluster.metrics import families
from roost.cluster.ownership import LOCK_APP, Ownership
from roost.store import fence
from roost.store.postgres import PgStore

pytestmark = pytest.mark.anyio

GROUPS = [f"g{i:02d}" for i in range(30)]


class Worker:
    def __init__(self, url: str, name: str, groups: list[str] = GROUPS) -> None:
        self.serving: dict[str, int] = {}
        self.lost_at: dict[str, float] = {}
        self.ownership = Ownership(
            url, name, groups, self._gain, self._lose, check_s=0.2, timeout_s=2.0
        )
        self.scope = anyio.CancelScope()

    async def _gain(self, group: str, epoch: int) -> None:
        self.serving[group] = epoch

    async def _lose(self, group: str) -> None:
        self.serving.pop(group, None)
        self.lost_at[group] = anyio.current_time()

    async def run(self) -> None:
        with self.scope:
            await self.ownership.run()


async def until(condition: Callable[[], bool], within: float = 15.0) -> float:
    """Wait for the condition; how long it took."""
    start = anyio.current_time()
    with anyio.fail_after(within):
        while not condition():
            await anyio.sleep(0.05)
    return anyio.current_time() - start


def exposition(name: str, worker: Worker) -> str:
    """The worker's cluster metrics as Prometheus would scrape them."""
    own = worker.ownership

    class Collector:
        def collect(self) -> Iterator[Metric]:
            return families(name, len(own.owned), own.counters, 0)

    registry = CollectorRegistry()
    registry.register(Collector())
    return generate_latest(registry).decode()


def disjoint_cover(workers: list[Worker]) -> bool:
    owned = [g for w in workers for g in w.serving]
    return sorted(owned) == GROUPS


async def test_each_group_has_one_owner_a_fair_share_and_rebalances_on_join_and_leave(
    pg_url: str,
) -> None:
    PgStore(pg_url)  # migrated
    a, b, c = (Worker(pg_url, n) for n in "abc")
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run)
        await until(lambda: len(a.serving) == 30)
        tg.start_soon(b.run)
        tg.start_soon(c.run)
        await until(lambda: [len(w.serving) for w in (a, b, c)] == [10, 10, 10])
        assert disjoint_cover([a, b, c])
        assert a.ownership.counters.released == 20  # gave up what the newcomers took
        c.scope.cancel()  # c leaves: its session ends, its locks go with it
        took = await until(lambda: disjoint_cover([a, b]) and len(a.serving) == 15)
        assert took < 10
        assert len(b.serving) == 15
        tg.cancel_scope.cancel()


async def test_a_worker_whose_lock_session_dies_stops_at_once_and_is_fenced(
    pg_url: str,
) -> None:
    PgStore(pg_url)
    pool = AsyncConnectionPool(pg_url, kwargs={"autocommit": True}, open=False)
    await pool.open()
    a, b = Worker(pg_url, "a"), Worker(pg_url, "b")
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.run)
        await until(lambda: len(a.serving) == 30)
        tg.start_soon(b.run)
        await until(lambda: len(b.serving) == 15 and len(a.serving) == 15)
        group = min(a.serving)
        old_epoch = a.serving[group]
        assert await fence.outbox_add(pool, group, old_epoch, "n1", {}, datetime.now(UTC))
        # the partition: a's lock session is cut by the server; a's other connections
        # (and its vendor streams) stay up
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (LOCK_APP + "a",),
            )
            cut = anyio.current_time()
        await until(lambda: a.lost_at.get(group, 0.0) > cut, within=10)
        stopped = a.lost_at[group] - cut
        assert stopped < 2.0 + 0.2 + 1.0  # within the lock timeout (+ scheduling slack)

        def epoch_now() -> int:
            return a.serving.get(group) or b.serving.get(group) or 0

        # every group served again, once (a's new session claims its share afresh)
        await until(lambda: disjoint_cover([a, b]) and epoch_now() > old_epoch)
        owner = "a" if group in a.serving else "b"
        with pytest.raises(fence.Fenced):
            await fence.outbox_add(pool, group, old_epoch, "n2", {}, datetime.now(UTC))
        with pytest.raises(fence.Fenced):
            await fence.command(pool, group, old_epoch, "a", "c1", group, {})
        assert await fence.command(pool, group, epoch_now(), owner, "c1", group, {})
        # the row written before the cut is b's to deliver now
        assert await fence.pending_outbox(pool, group) == ["n1"]
        text = exposition("a", a)
        assert 'roost_cluster_lock_sessions_lost_total{worker="a"} 1.0' in text
        gained = a.ownership.counters.gained
        assert gained >= 30
        assert f'roost_cluster_groups_gained_total{{worker="a"}} {gained:.1f}' in text
        assert 'roost_cluster_lock_sessions_lost_total{worker="b"} 0.0' in exposition("b", b)
        tg.cancel_scope.cancel()
    await pool.close()


async def test_without_the_epoch_check_a_stale_owner_would_write(pg_url: str) -> None:
    """The fence is what refuses: the same write, unfenced, goes through."""
    PgStore(pg_url)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("INSERT INTO cluster_groups (grp, epoch) VALUES ('g', 2)")
        async with conn.transaction():
            with pytest.raises(fence.Fenced):
                await fence.check_epoch(conn, "g", 1)
        await conn.execute(
            "INSERT INTO cluster_commands (id, grp, epoch, worker, account, body)"
            " VALUES ('c', 'g', 1, 'old', 'g', '{}')"
        )  # nothing else stops it
