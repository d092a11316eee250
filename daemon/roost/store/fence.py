"""Writes that only the current owner of a group can make.

Each runs in one transaction that first reads the group's epoch `FOR SHARE`: a different
epoch (another worker claimed the group since) refuses the write with `Fenced`; the same
epoch holds the row, so a new owner's epoch raise waits for this commit and then sees the
row it wrote (pending outbox rows and commands are taken over, never lost nor doubled).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from roost.core.codec import dumps


class Fenced(RuntimeError):
    """This worker no longer owns the group (a newer epoch exists)."""


async def check_epoch(conn: psycopg.AsyncConnection[Any], group: str, epoch: int) -> None:
    cursor = await conn.execute(
        b"SELECT epoch FROM cluster_groups WHERE grp = %s FOR SHARE", (group,)
    )
    row = await cursor.fetchone()
    current = int(row[0]) if row else None
    if current != epoch:
        raise Fenced(f"group {group!r}: epoch {epoch} is stale (now {current})")


async def outbox_add(
    pool: AsyncConnectionPool,
    group: str,
    epoch: int,
    key: str,
    payload: dict[str, Any],
    at: datetime,
) -> bool:
    """Commit a notification for the group (False if the key is already there)."""
    async with pool.connection() as conn, conn.transaction():
        await check_epoch(conn, group, epoch)
        cursor = await conn.execute(
            b"INSERT INTO outbox (key, payload, state, created_at, next_attempt_at, grp)"
            b" VALUES (%s, %s, 'pending', %s, %s, %s) ON CONFLICT (key) DO NOTHING",
            (key, dumps(payload), at, at, group),
        )
        return cursor.rowcount == 1


async def outbox_finish(
    pool: AsyncConnectionPool, group: str, epoch: int, key: str, state: str, at: datetime
) -> None:
    """Record a delivery's end (delivered/dead) as the group's owner."""
    async with pool.connection() as conn, conn.transaction():
        await check_epoch(conn, group, epoch)
        await conn.execute(
            b"UPDATE outbox SET state = %s, attempts = attempts + 1, finished_at = %s"
            b" WHERE key = %s",
            (state, at, key),
        )


async def command(
    pool: AsyncConnectionPool,
    group: str,
    epoch: int,
    worker: str,
    command_id: str,
    account: str,
    body: dict[str, Any],
) -> bool:
    """Record a command about to be sent for one of the group's accounts: the durable row
    the send depends on. False if that command was already recorded by another owner or
    epoch (sent by a previous owner: not sent again); the same owner in the same epoch may
    send it again (the dispatcher's retry after a 429, a timeout or a 5xx)."""
    async with pool.connection() as conn, conn.transaction():
        await check_epoch(conn, group, epoch)
        cursor = await conn.execute(
            b"INSERT INTO cluster_commands (id, grp, epoch, worker, account, body)"
            b" VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET at = now()"
            b" WHERE cluster_commands.worker = excluded.worker"
            b" AND cluster_commands.epoch = excluded.epoch",
            (command_id, group, epoch, worker, account, dumps(body)),
        )
        return cursor.rowcount == 1


async def pending_outbox(pool: AsyncConnectionPool, group: str) -> list[str]:
    """The group's notifications not yet delivered (a new owner takes them over)."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            b"SELECT key FROM outbox WHERE grp = %s AND state = 'pending' ORDER BY created_at",
            (group,),
        )
        return [str(r[0]) for r in await cursor.fetchall()]


async def adopt_timers(
    pool: AsyncConnectionPool,
    worker: str,
    accounts: list[str],
    kinds: tuple[str, ...] = ("hold", "debounce", "delay"),
) -> list[tuple[str, str, str, datetime, dict[str, Any]]]:
    """Take over the pending timers about these accounts, just gained (holds, debounces
    and delays name their event's account), from whichever worker kept them: (id, rule,
    kind, due_at, payload) of each, now this worker's. A previous owner still alive may
    fire its copy too: the same stored event, so the same dedupe key."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            b"UPDATE timers SET grp = %s WHERE grp <> '' AND grp <> %s"
            b" AND (payload::json -> 'event' ->> 'account') = ANY(%s)"
            b" AND id NOT IN (SELECT id FROM timers WHERE grp = %s) AND kind = ANY(%s)"
            b" RETURNING id, rule, kind, due_at, payload",
            (worker, worker, accounts, worker, list(kinds)),
        )
        return [
            (str(r[0]), str(r[1]), str(r[2]), r[3], json.loads(r[4]))
            for r in await cursor.fetchall()
        ]
