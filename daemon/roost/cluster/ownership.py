"""Which worker serves which account group: PostgreSQL session-level advisory locks.

Each worker keeps one dedicated connection, its lock session (application_name
`roost-lock:<worker>`), and holds there one advisory lock per group it owns. The live
workers are the lock sessions PostgreSQL sees; each claims unowned groups up to its fair
share (ceil(groups / workers)) and releases what it holds beyond that, so a joining worker
gets its share and a leaving one's groups are taken. Winning a lock raises the group's
epoch (cluster_groups); every outbox and command write checks that epoch in its own
transaction (roost.store.fence), so a worker that lost a group cannot write for it.

The lock session is checked every `check_s`; if it fails or does not answer within
`timeout_s`, the worker stops every group at once (on_lose) before anything else: its locks
are gone with the session, and another worker may already own them.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import psycopg
import structlog

from roost.store.fence import Fenced
from roost.store.postgres import OPTIONS

log = structlog.get_logger(__name__)

LOCK_APP = "roost-lock:"
Gain = Callable[[str, int], Awaitable[None]]
Lose = Callable[[str], Awaitable[None]]


def lock_key(group: str) -> int:
    """The group's advisory lock key: 64 bits of its hash, as a signed bigint."""
    return int.from_bytes(
        hashlib.blake2b(group.encode(), digest_size=8).digest(), "big", signed=True
    )


@dataclass
class Counters:
    gained: int = 0
    released: int = 0
    sessions_lost: int = 0


@dataclass
class Ownership:
    url: str
    worker: str
    groups: Sequence[str]
    on_gain: Gain
    on_lose: Lose
    password: str | None = None
    check_s: float = 0.5
    timeout_s: float = 2.0
    settle_s: float = 1.0
    owned: dict[str, int] = field(default_factory=dict)  # group -> epoch
    counters: Counters = field(default_factory=Counters)
    _keys: dict[int, str] = field(default_factory=dict)
    _session: tuple[int, Any] | None = None  # the lock session: (pid, backend_start)

    def __post_init__(self) -> None:
        self._keys = {lock_key(g): g for g in self.groups}

    async def run(self) -> None:
        """Hold a lock session and keep a fair share of the groups, until cancelled. A lost
        session stops every group at once, then a new session starts claiming afresh."""
        while True:
            try:
                async with await self._connect() as conn:
                    await self._register(conn)
                    cursor = await conn.execute(
                        b"SELECT pid, backend_start FROM pg_stat_activity"
                        b" WHERE pid = pg_backend_pid()"
                    )
                    row = await cursor.fetchone()
                    self._session = (int(row[0]), row[1]) if row else None
                    # Workers started together see each other before claiming, rather
                    # than the first taking everything and handing most of it back.
                    await anyio.sleep(self.settle_s)
                    while True:
                        await self._balance(conn)
                        await anyio.sleep(self.check_s)
            except (psycopg.Error, TimeoutError, OSError) as exc:
                self._session = None
                await self._lose_all(str(exc) or type(exc).__name__)
                await anyio.sleep(self.check_s)

    async def check_session(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Raise `Fenced` unless the lock session is alive, seen from `conn` (another
        connection, inside the transaction of the write this guards)."""
        session = self._session
        if session is None:
            raise Fenced("no lock session")
        cursor = await conn.execute(
            b"SELECT 1 FROM pg_stat_activity WHERE pid = %s AND backend_start = %s", session
        )
        if await cursor.fetchone() is None:
            raise Fenced("the lock session is gone")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        with anyio.fail_after(self.timeout_s * 5):
            return await psycopg.AsyncConnection.connect(
                self.url,
                password=self.password,
                autocommit=True,
                options=OPTIONS,
                application_name=LOCK_APP + self.worker,
            )

    async def _register(self, conn: psycopg.AsyncConnection[Any]) -> None:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                b"INSERT INTO cluster_groups (grp) VALUES (%s) ON CONFLICT DO NOTHING",
                [(g,) for g in self.groups],
            )

    async def _lose_all(self, why: str) -> None:
        if not self.owned:
            return
        self.counters.sessions_lost += 1
        lost, self.owned = list(self.owned), {}
        log.error("lock session lost: stopping every group", groups=len(lost), error=why)
        with anyio.CancelScope(shield=True):
            for group in lost:
                await self.on_lose(group)

    async def _balance(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # Each round trip on the lock session has the lock timeout: one that does not
        # answer in time means the session is as good as lost.
        with anyio.fail_after(self.timeout_s):
            workers = await self._live_workers(conn)
        share = math.ceil(len(self.groups) / max(1, workers))
        extra = list(self.owned)[share:]
        if extra:
            await self._release(conn, extra)
        # At most a quarter of the share a round: a worker that briefly looks alone (its
        # peers still starting) does not claim everything only to hand most of it back.
        want = min(share - len(self.owned), max(1, math.ceil(share / 4)))
        if want <= 0:
            return
        with anyio.fail_after(self.timeout_s):
            taken = await self._locked_keys(conn)
        free = [k for k, g in self._keys.items() if k not in taken and g not in self.owned]
        random.shuffle(free)  # workers claiming together spread over different groups
        with anyio.fail_after(self.timeout_s):
            claimed = await self._claim(conn, free, want)
        for group, epoch in claimed:
            self.owned[group] = epoch
            self.counters.gained += 1
            await self.on_gain(group, epoch)

    async def _live_workers(self, conn: psycopg.AsyncConnection[Any]) -> int:
        cursor = await conn.execute(
            b"SELECT count(DISTINCT application_name) FROM pg_stat_activity"
            b" WHERE application_name LIKE 'roost-lock:%%'"
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 1

    async def _locked_keys(self, conn: psycopg.AsyncConnection[Any]) -> set[int]:
        cursor = await conn.execute(
            b"SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
            b" WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
        )
        return {_signed(int(r[0])) for r in await cursor.fetchall()}

    async def _claim(
        self, conn: psycopg.AsyncConnection[Any], keys: list[int], want: int
    ) -> list[tuple[str, int]]:
        """Lock up to `want` of these groups (the scan stops at the limit: no lock is taken
        beyond it), then raise their epochs; [(group, epoch)]."""
        if not keys:
            return []
        cursor = await conn.execute(
            b"SELECT k FROM unnest(%s::bigint[]) AS k WHERE pg_try_advisory_lock(k) LIMIT %s",
            (keys, want),
        )
        groups = [self._keys[int(r[0])] for r in await cursor.fetchall()]
        if not groups:
            return []
        cursor = await conn.execute(
            b"UPDATE cluster_groups SET epoch = epoch + 1, owner = %s, owned_at = now()"
            b" WHERE grp = ANY(%s) RETURNING grp, epoch",
            (self.worker, groups),
        )
        return [(str(r[0]), int(r[1])) for r in await cursor.fetchall()]

    async def _release(self, conn: psycopg.AsyncConnection[Any], groups: list[str]) -> None:
        """Stop serving first, then let go of the locks (a rebalance after a join)."""
        for group in groups:
            self.owned.pop(group, None)
            await self.on_lose(group)
        with anyio.fail_after(self.timeout_s):
            await conn.execute(
                b"SELECT pg_advisory_unlock(k) FROM unnest(%s::bigint[]) AS k",
                ([lock_key(g) for g in groups],),
            )
        self.counters.released += len(groups)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
