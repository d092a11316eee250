"""The durable state in PostgreSQL, for a fleet of workers sharing one database.

The same contract as the SQLite store (roost.store.interface.StateStore): tokens, provider
memory, the notification outbox, timers, rule state, the last known state of each home,
change identities, the alarms roost pushed itself and the event journal. psycopg 3 with an
async connection pool; versioned migrations (table `roost_schema`, applied under an advisory
lock so that workers starting together migrate once). Timestamps are `timestamptz` in UTC;
JSON is kept as text, exactly as written (jsonb would reorder keys and refuse NUL
characters).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import anyio.to_thread
import psycopg
from psycopg_pool import AsyncConnectionPool

from roost.core.codec import dumps, event_json
from roost.core.events import Event
from roost.core.timers import TimerRecord
from roost.providers.base import TokenSet
from roost.store.sqlite import JournalEntry, OutboxEntry, StoreError

MIGRATION_LOCK = 0x726F6F7374  # "roost": one migrator at a time
OPTIONS = "-c timezone=UTC"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tokens (
        account text PRIMARY KEY,
        access_token text NOT NULL,
        refresh_token text,
        expires_at timestamptz,
        scope text NOT NULL DEFAULT '',
        updated_at timestamptz NOT NULL
    );
    CREATE TABLE provider_memory (
        account text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (account, key)
    );
    CREATE TABLE outbox (
        key text PRIMARY KEY,
        payload text NOT NULL,
        state text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        delivered_to text NOT NULL DEFAULT '[]',
        created_at timestamptz NOT NULL,
        next_attempt_at timestamptz NOT NULL,
        last_error text NOT NULL DEFAULT '',
        finished_at timestamptz,
        grp text NOT NULL DEFAULT ''
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
    CREATE TABLE timers (
        id text PRIMARY KEY,
        rule text NOT NULL,
        kind text NOT NULL,
        due_at timestamptz NOT NULL,
        payload text NOT NULL,
        grp text NOT NULL DEFAULT ''
    );
    CREATE TABLE rule_state (
        grp text NOT NULL DEFAULT '',
        rule text NOT NULL,
        state text NOT NULL,
        PRIMARY KEY (grp, rule)
    );
    CREATE TABLE home_state (
        account text PRIMARY KEY,
        snapshot text NOT NULL,
        saved_at timestamptz NOT NULL
    );
    CREATE TABLE change_versions (
        account text NOT NULL,
        key text NOT NULL,
        version bigint NOT NULL,
        value text NOT NULL,
        PRIMARY KEY (account, key)
    );
    CREATE TABLE journal (
        seq bigserial PRIMARY KEY,
        at timestamptz NOT NULL,
        event text NOT NULL,
        account text NOT NULL,
        body text NOT NULL
    );
    CREATE INDEX journal_at ON journal (at);
    CREATE INDEX journal_event ON journal (event, seq);
    CREATE TABLE meta (
        key text PRIMARY KEY,
        value text NOT NULL
    );
    """,
    # A fleet (roost.cluster): who owns each account group, in which epoch. The epoch is
    # raised by each new owner; every fenced write checks it in its own transaction.
    """
    CREATE TABLE cluster_groups (
        grp text PRIMARY KEY,
        epoch bigint NOT NULL DEFAULT 0,
        owner text NOT NULL DEFAULT '',
        owned_at timestamptz
    );
    CREATE TABLE cluster_commands (
        id text PRIMARY KEY,
        grp text NOT NULL,
        epoch bigint NOT NULL,
        worker text NOT NULL,
        account text NOT NULL,
        body text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE outbox ADD COLUMN writer text NOT NULL DEFAULT '';
    CREATE INDEX outbox_group ON outbox (grp, state);
    ALTER TABLE timers DROP CONSTRAINT timers_pkey;
    ALTER TABLE timers ADD PRIMARY KEY (grp, id);
    """,
    # Fleet commands (roost.cluster.fleet): one command, one row per account.
    """
    CREATE TABLE fleet_commands (
        id text PRIMARY KEY,
        selection text NOT NULL,
        setting text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE fleet_targets (
        fleet text NOT NULL REFERENCES fleet_commands (id),
        account text NOT NULL,
        grp text NOT NULL,
        state text NOT NULL DEFAULT 'pending',
        detail text NOT NULL DEFAULT '',
        worker text NOT NULL DEFAULT '',
        epoch bigint,
        done_at timestamptz,
        PRIMARY KEY (fleet, account)
    );
    CREATE INDEX fleet_pending ON fleet_targets (state, grp);
    """,
    # Fleet commands with a window (start, and an end that restores each setpoint saved at
    # the start, in the row's plan) and the vendor's final outcome per account.
    """
    ALTER TABLE fleet_commands ADD COLUMN starts_at timestamptz NOT NULL DEFAULT now();
    ALTER TABLE fleet_commands ADD COLUMN ends_at timestamptz;
    ALTER TABLE fleet_targets ADD COLUMN plan text NOT NULL DEFAULT '[]';
    ALTER TABLE fleet_targets ADD COLUMN started_at timestamptz;
    ALTER TABLE fleet_targets ADD COLUMN restore text NOT NULL DEFAULT '';
    ALTER TABLE fleet_targets ADD COLUMN restore_detail text NOT NULL DEFAULT '';
    ALTER TABLE fleet_targets ADD COLUMN restored_at timestamptz;
    CREATE INDEX fleet_open ON fleet_targets (grp)
        WHERE state IN ('pending', 'sending') OR restore IN ('due', 'sending');
    """,
    # The smoke/CO alarms roost pushed itself, until they clear (notify/alerts.py).
    """
    CREATE TABLE alarms_pushed (
        account text NOT NULL,
        device text NOT NULL,
        alarm text NOT NULL,
        PRIMARY KEY (account, device, alarm)
    );
    """,
)


def migrate(conn: psycopg.Connection[Any], migrations: Sequence[str] = MIGRATIONS) -> int:
    """Bring the schema up to date (once, whoever else starts at the same time)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS roost_schema (version integer NOT NULL)")
        row = conn.execute("SELECT max(version) FROM roost_schema").fetchone()
        version = int(row[0]) if row and row[0] is not None else 0
        if version > len(migrations):
            raise StoreError(
                f"the state database is at schema {version}, newer than this roost "
                f"({len(migrations)}); upgrade roost or restore a backup"
            )
        for number, script in enumerate(migrations[version:], start=version + 1):
            conn.execute(script.encode())
            conn.execute("INSERT INTO roost_schema VALUES (%s)", (number,))
    return len(migrations)


def connect(url: str, password: str | None = None) -> psycopg.Connection[Any]:
    """A plain (synchronous, autocommit) connection; a clear StoreError if there is none."""
    try:
        return psycopg.connect(url, password=password, options=OPTIONS, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store: {exc}") from None


class StoreFence(Protocol):
    """A fleet worker (roost.cluster.worker): whose rows it writes and when it may."""

    worker: str
    epochs: dict[str, int]  # the groups it owns now, each with its ownership epoch

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Raise (roost.store.fence.Fenced) if this worker's lock session is gone."""

    def owns(self, account: str) -> bool: ...

    def group_of(self, account: str) -> str | None: ...


LIVE_WRITERS = (
    "SELECT coalesce(array_agg(substr(application_name, 12)), '{}') FROM pg_stat_activity"
    " WHERE application_name LIKE 'roost-lock:%%'"
)


class PgStore:
    """The store on a PostgreSQL connection pool."""

    def __init__(self, url: str, *, password: str | None = None, max_size: int = 4) -> None:
        self.url = url
        self._password = password
        with connect(url, password) as conn:
            migrate(conn)
        kwargs: dict[str, Any] = {"options": OPTIONS, "autocommit": True}
        if password is not None:
            kwargs["password"] = password
        self._pool = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, kwargs=kwargs, open=False
        )
        self._opened = False
        self._open_lock = anyio.Lock()
        self._versions: list[tuple[str, str, int, Any]] = []
        self._versions_lock = threading.Lock()
        # Set by a fleet worker: outbox writes are then fenced by its lock session, rows
        # carry it as their writer, and homes it does not own are not written.
        self.fence: StoreFence | None = None

    async def pool(self) -> AsyncConnectionPool:
        return await self._connection()

    async def _connection(self) -> AsyncConnectionPool:
        if not self._opened:
            async with self._open_lock:
                if not self._opened:
                    await self._pool.open(wait=True, timeout=30)
                    self._opened = True
        return self._pool

    async def aclose(self) -> None:
        if self._opened:
            await self.flush()
            await self._pool.close()
            self._opened = False

    def timer_persistence(self) -> PgTimers:
        return PgTimers(self.url, self._password, scope=self._scope)

    def _scope(self) -> str:
        """Whose timers and rule state: a fleet worker's own (by its name), else ''."""
        return self.fence.worker if self.fence is not None else ""

    async def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction (after the queued versions); rows changed."""
        pool = await self._connection()
        async with pool.connection() as conn, conn.transaction():
            await self._write_versions(conn)
            cursor = await conn.execute(sql.encode(), params)
            return cursor.rowcount

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        pool = await self._connection()
        async with pool.connection() as conn, conn.transaction():
            await self._write_versions(conn)
            cursor = await conn.execute(sql.encode(), params)
            return await cursor.fetchall()

    async def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        pool = await self._connection()
        async with pool.connection() as conn, conn.transaction():
            await self._write_versions(conn)
            async with conn.cursor() as cursor:
                await cursor.executemany(sql.encode(), rows)

    # ---- tokens --------------------------------------------------------------------------

    async def load_token(self, account: str) -> TokenSet | None:
        rows = await self._fetch(
            "SELECT access_token, refresh_token, expires_at, scope FROM tokens WHERE account = %s",
            (account,),
        )
        if not rows:
            return None
        access, refresh, expires, scope = rows[0]
        return TokenSet(access, refresh, expires, scope)

    async def save_token(self, account: str, tokens: TokenSet) -> None:
        await self._execute(
            "INSERT INTO tokens VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (account)"
            " DO UPDATE SET access_token=excluded.access_token,"
            " refresh_token=excluded.refresh_token, expires_at=excluded.expires_at,"
            " scope=excluded.scope, updated_at=excluded.updated_at",
            (account, tokens.access_token, tokens.refresh_token, tokens.expires_at, tokens.scope),
        )

    # ---- provider memory -----------------------------------------------------------------

    async def memory_get(self, account: str, key: str) -> str | None:
        rows = await self._fetch(
            "SELECT value FROM provider_memory WHERE account = %s AND key = %s", (account, key)
        )
        return str(rows[0][0]) if rows else None

    async def memory_put(self, account: str, key: str, value: str) -> None:
        await self._execute(
            "INSERT INTO provider_memory VALUES (%s, %s, %s)"
            " ON CONFLICT (account, key) DO UPDATE SET value=excluded.value",
            (account, key, value),
        )

    # ---- notification outbox -------------------------------------------------------------

    async def outbox_add(self, key: str, payload: dict[str, Any], at: datetime) -> bool:
        """In a fleet, fenced by the ownership epoch of the account's group, checked in the
        transaction of the write (roost.store.fence): a worker that lost the group adds
        nothing (raises Fenced), except an urgent notification (alarms fail open): that row
        is written anyway, and the group's owner delivers it, so it goes out, at worst twice
        with one dedupe key. A notification about no account is fenced by the lock session."""
        sql = (
            "INSERT INTO outbox (key, payload, state, created_at, next_attempt_at, writer, grp)"
            " VALUES (%s, %s, 'pending', %s, %s, %s, %s) ON CONFLICT (key) DO NOTHING"
        )
        if self.fence is None:
            return await self._execute(sql, (key, dumps(payload), at, at, "", "")) == 1
        from roost.store.fence import Fenced, check_epoch  # the fleet's own module

        account = payload.get("account")
        group = self.fence.group_of(account) if isinstance(account, str) else None
        epoch = self.fence.epochs.get(group) if group is not None else None
        params = (key, dumps(payload), at, at, self.fence.worker, group or "")
        urgent = payload.get("priority") == "urgent"
        pool = await self._connection()
        async with pool.connection() as conn, conn.transaction():
            try:
                if group is None:
                    await self.fence.check(conn)
                elif epoch is None:
                    raise Fenced(f"group {group!r} is not this worker's")
                else:
                    await check_epoch(conn, group, epoch)
            except Fenced:
                if not urgent:
                    raise
            cursor = await conn.execute(sql.encode(), params)
            return cursor.rowcount == 1

    async def outbox_due(
        self, now: datetime, horizon: datetime | None = None, limit: int = 100
    ) -> list[OutboxEntry]:
        due = "state = 'pending' AND (next_attempt_at <= %s OR next_attempt_at > %s)"
        params = (now, horizon or datetime.max.replace(tzinfo=UTC))
        if self.fence is None:
            rows = await self._fetch(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE {due}"
                f" ORDER BY {MUST_GO_OUT_FIRST}, created_at LIMIT %s",
                (*params, limit),
            )
            return [outbox_entry(r) for r in rows]
        # A fleet: the rows of the groups this worker owns in their current epoch (checked
        # and held in this transaction, so no new owner's claim passes meanwhile), whoever
        # wrote them; and rows about no account that this worker or a writer no longer
        # alive wrote. Each is taken by one worker (SKIP LOCKED); the writer is then this one.
        me = self.fence.worker
        owned = dict(self.fence.epochs)
        pool = await self._connection()
        async with pool.connection() as conn, conn.transaction():
            if not await self._may_write(conn):
                return []  # nothing to deliver until this worker holds a lock session
            cursor = await conn.execute(
                b"SELECT c.grp FROM cluster_groups c"
                b" JOIN unnest(%s::text[], %s::bigint[]) AS mine(grp, epoch)"
                b" ON c.grp = mine.grp AND c.epoch = mine.epoch FOR SHARE OF c",
                (list(owned), list(owned.values())),
            )
            groups = [str(r[0]) for r in await cursor.fetchall()]
            cursor = await conn.execute(
                (
                    f"UPDATE outbox SET writer = %s WHERE key IN (SELECT key FROM outbox"
                    f" WHERE {due} AND (grp = ANY(%s::text[]) OR (grp = '' AND (writer = %s::text"
                    f" OR writer <> ALL(({LIVE_WRITERS})::text[]))))"
                    f" ORDER BY {MUST_GO_OUT_FIRST}, created_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                    f" RETURNING {OUTBOX_COLUMNS}"
                ).encode(),
                (me, *params, groups, me, limit),
            )
            entries = [outbox_entry(r) for r in await cursor.fetchall()]
        return sorted(entries, key=lambda e: e.created_at)

    async def outbox_next_due(self) -> datetime | None:
        rows = await self._fetch("SELECT min(next_attempt_at) FROM outbox WHERE state = 'pending'")
        value: datetime | None = rows[0][0] if rows else None
        return value

    async def outbox_list(self, states: Sequence[str] = ("pending", "dead")) -> list[OutboxEntry]:
        rows = await self._fetch(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = ANY(%s) ORDER BY created_at",
            (list(states),),
        )
        return [outbox_entry(r) for r in rows]

    async def outbox_update(
        self,
        key: str,
        *,
        state: str,
        attempts: int,
        delivered_to: list[str],
        next_attempt_at: datetime,
        last_error: str = "",
        finished_at: datetime | None = None,
    ) -> None:
        sql = (
            "UPDATE outbox SET state=%s, attempts=%s, delivered_to=%s, next_attempt_at=%s,"
            " last_error=%s, finished_at=%s WHERE key=%s"
        )
        params = (
            state,
            attempts,
            dumps(delivered_to),
            next_attempt_at,
            last_error,
            finished_at,
            key,
        )
        if self.fence is None:
            await self._execute(sql, params)
            return
        pool = await self._connection()
        async with pool.connection() as conn, conn.transaction():
            # A worker that lost the row's group (or, for a row about no account, its lock
            # session) records nothing: the row stays pending and the owner sends it again,
            # with the same dedupe key (the documented window).
            cursor = await conn.execute(b"SELECT grp FROM outbox WHERE key = %s FOR UPDATE", (key,))
            row = await cursor.fetchone()
            group = str(row[0]) if row else ""
            if await self._may_write(conn, group):
                await conn.execute(sql.encode(), params)

    async def _may_write(self, conn: psycopg.AsyncConnection[Any], group: str = "") -> bool:
        """Whether this worker still owns `group` in its epoch (checked and held in the
        transaction of `conn`); for no group, whether its lock session is alive."""
        from roost.store.fence import Fenced, check_epoch  # the fleet's own module

        assert self.fence is not None
        try:
            if not group:
                await self.fence.check(conn)
                return True
            epoch = self.fence.epochs.get(group)
            if epoch is None:
                return False
            await check_epoch(conn, group, epoch)
        except Fenced:
            return False
        return True

    async def outbox_retry(self, key: str, now: datetime) -> bool:
        changed = await self._execute(
            "UPDATE outbox SET state='pending', next_attempt_at=%s, finished_at=NULL"
            " WHERE key=%s AND state IN ('pending', 'dead')",
            (now, key),
        )
        return changed == 1

    async def outbox_prune(self, delivered_before: datetime) -> int:
        return await self._execute(
            "DELETE FROM outbox WHERE state = 'delivered' AND finished_at < %s",
            (delivered_before,),
        )

    # ---- timers and rule state -----------------------------------------------------------

    async def timer_put(
        self, timer_id: str, rule: str, kind: str, due_at: datetime, payload: dict[str, Any]
    ) -> None:
        await self._execute(
            TIMER_UPSERT, (timer_id, rule, kind, due_at, dumps(payload), self._scope())
        )

    async def timer_delete(self, timer_id: str) -> None:
        await self._execute(
            "DELETE FROM timers WHERE id = %s AND grp = %s", (timer_id, self._scope())
        )

    async def timers(self) -> list[tuple[str, str, str, datetime, dict[str, Any]]]:
        rows = await self._fetch(
            "SELECT id, rule, kind, due_at, payload FROM timers WHERE grp = %s", (self._scope(),)
        )
        return [(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    async def rule_state_put(self, states: dict[str, dict[str, Any]]) -> None:
        if states:
            await self._many(
                "INSERT INTO rule_state (grp, rule, state) VALUES (%s, %s, %s)"
                " ON CONFLICT (grp, rule) DO UPDATE SET state=excluded.state",
                [(self._scope(), rule, dumps(state)) for rule, state in states.items()],
            )

    async def rule_states(self) -> dict[str, dict[str, Any]]:
        rows = await self._fetch(
            "SELECT rule, state FROM rule_state WHERE grp = %s", (self._scope(),)
        )
        return {str(r[0]): json.loads(r[1]) for r in rows}

    # ---- last known state of each home ---------------------------------------------------

    async def home_put(self, account: str, snapshot: dict[str, Any], at: datetime) -> None:
        await self.homes_put([(account, dumps(snapshot))], at)

    async def homes_put(self, homes: Sequence[tuple[str, str]], at: datetime) -> None:
        """Several homes (account, snapshot as JSON text) in one transaction. In a fleet
        only those whose group this worker owns, by the group's epoch read `FOR SHARE` in
        that transaction: a home whose group another worker claimed since is its new owner's
        to keep, and the baseline a later takeover catches up from is never one a stale
        owner wrote."""
        fence = self.fence
        if fence is None:
            if homes:
                await self._many(HOME_UPSERT, [(a, s, at) for a, s in homes])
            return
        mine: dict[str, tuple[int, list[tuple[str, str, datetime]]]] = {}
        for account, snapshot in homes:
            group = fence.group_of(account)
            epoch = fence.epochs.get(group) if group is not None else None
            if group is not None and epoch is not None:
                mine.setdefault(group, (epoch, []))[1].append((account, snapshot, at))
        if not mine:
            return
        pool = await self._connection()
        async with pool.connection() as conn, conn.transaction():
            await self._write_versions(conn)
            cursor = await conn.execute(
                b"SELECT grp, epoch FROM cluster_groups WHERE grp = ANY(%s) FOR SHARE",
                (list(mine),),
            )
            current = {str(g): int(e) for g, e in await cursor.fetchall()}
            rows = [r for g, (epoch, rs) in mine.items() if current.get(g) == epoch for r in rs]
            if rows:
                async with conn.cursor() as writes:
                    await writes.executemany(HOME_UPSERT.encode(), rows)

    async def homes(self) -> dict[str, dict[str, Any]]:
        rows = await self._fetch("SELECT account, snapshot FROM home_state")
        return {str(r[0]): json.loads(r[1]) for r in rows}

    async def homes_of(self, accounts: Sequence[str]) -> dict[str, dict[str, Any]]:
        rows = await self._fetch(
            "SELECT account, snapshot FROM home_state WHERE account = ANY(%s)", (list(accounts),)
        )
        return {str(r[0]): json.loads(r[1]) for r in rows}

    def reserve_versions(self, account: str, items: Sequence[tuple[str, int, Any]]) -> None:
        with self._versions_lock:
            self._versions.extend((account, k, v, value) for k, v, value in items)

    async def _write_versions(self, conn: psycopg.AsyncConnection[Any]) -> None:
        with self._versions_lock:
            pending, self._versions = self._versions, []
        if self.fence is not None:
            pending = [p for p in pending if self.fence.owns(p[0])]
        if not pending:
            return
        async with conn.cursor() as cursor:
            await cursor.executemany(
                b"INSERT INTO change_versions VALUES (%s, %s, %s, %s) ON CONFLICT (account, key)"
                b" DO UPDATE SET version=excluded.version, value=excluded.value",
                [(a, _key(key), version, dumps(value)) for a, key, version, value in pending],
            )

    async def flush(self) -> None:
        await self._fetch("SELECT 1")

    async def versions_of(self, accounts: Sequence[str]) -> dict[str, dict[str, tuple[int, Any]]]:
        rows = await self._fetch(
            "SELECT account, key, version, value FROM change_versions WHERE account = ANY(%s)",
            (list(accounts),),
        )
        found: dict[str, dict[str, tuple[int, Any]]] = {}
        for account, key, version, value in rows:
            found.setdefault(str(account), {})[_key_read(key)] = (int(version), json.loads(value))
        return found

    async def versions(self, account: str) -> dict[str, tuple[int, Any]]:
        rows = await self._fetch(
            "SELECT key, version, value FROM change_versions WHERE account = %s", (account,)
        )
        return {_key_read(r[0]): (int(r[1]), json.loads(r[2])) for r in rows}

    # ---- the event journal ---------------------------------------------------------------

    async def journal_append(self, entries: Sequence[JournalEntry]) -> None:
        if entries:
            await self._many(
                "INSERT INTO journal (at, event, account, body) VALUES (%s, %s, %s, %s)",
                [(e.at, e.event, e.account, dumps(e.body)) for e in entries],
            )

    async def journal_events(self, events: Sequence[Event]) -> None:
        """Journal `events`; their rows are made in a worker thread, off the event loop."""
        if events:
            rows = await anyio.to_thread.run_sync(_journal_rows, events)
            await self._many(
                "INSERT INTO journal (at, event, account, body) VALUES (%s, %s, %s, %s)", rows
            )

    async def journal(self, limit: int = 1000, event: str | None = None) -> list[JournalEntry]:
        where, params = ("WHERE event = %s", (event,)) if event else ("", ())
        rows = await self._fetch(
            f"SELECT at, event, account, body FROM journal {where} ORDER BY seq DESC LIMIT %s",
            (*params, limit),
        )
        return [JournalEntry(r[0], r[1], r[2], json.loads(r[3])) for r in reversed(rows)]

    async def journal_since(
        self, since: datetime, events: Sequence[str], limit: int = 100_000
    ) -> list[JournalEntry]:
        rows = await self._fetch(
            "SELECT at, event, account, body FROM journal WHERE at >= %s"
            " AND event = ANY(%s) ORDER BY seq DESC LIMIT %s",
            (since, list(events), limit),
        )
        return [JournalEntry(r[0], r[1], r[2], json.loads(r[3])) for r in reversed(rows)]

    async def journal_prune(self, older_than: datetime, keep_rows: int) -> int:
        gone = await self._execute("DELETE FROM journal WHERE at < %s", (older_than,))
        gone += await self._execute(
            "DELETE FROM journal WHERE seq <= (SELECT seq FROM journal"
            " ORDER BY seq DESC OFFSET %s LIMIT 1)",
            (keep_rows,),
        )
        return gone

    # ---- the alarms roost pushed itself ---------------------------------------------------

    async def alarms_pushed(self) -> list[tuple[str, str, str]]:
        rows = await self._fetch("SELECT account, device, alarm FROM alarms_pushed")
        return [(str(r[0]), _key_read(r[1]), str(r[2])) for r in rows]

    async def alarm_pushed_put(self, account: str, device: str, alarm: str) -> None:
        await self._execute(
            "INSERT INTO alarms_pushed VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (account, _key(device), alarm),
        )

    async def alarm_pushed_delete(self, account: str, device: str, alarm: str) -> None:
        await self._execute(
            "DELETE FROM alarms_pushed WHERE account = %s AND device = %s AND alarm = %s",
            (account, _key(device), alarm),
        )

    # ---- small values --------------------------------------------------------------------

    async def meta_get(self, key: str) -> str | None:
        rows = await self._fetch("SELECT value FROM meta WHERE key = %s", (key,))
        return str(rows[0][0]) if rows else None

    async def meta_put(self, key: str, value: str) -> None:
        await self._execute(
            "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (key, value),
        )


OUTBOX_COLUMNS = (
    "key, payload, state, attempts, delivered_to, created_at, next_attempt_at, last_error"
)
# Alarm and urgent notifications sort before the rest: a backlog (deliveries in flight
# count against the limit) must not keep an alarm out of the batch. Read from the payload's
# text (json.dumps): PostgreSQL's JSON types refuse a title with \u0000 in it, and a quote
# inside a string value is escaped, so no title can spell these.
MUST_GO_OUT_FIRST = """(payload ~ '"alarm": true' OR payload ~ '"priority": "urgent"') DESC"""
HOME_UPSERT = (
    "INSERT INTO home_state VALUES (%s, %s, %s) ON CONFLICT (account) DO UPDATE SET"
    " snapshot=excluded.snapshot, saved_at=excluded.saved_at"
)
TIMER_UPSERT = (
    "INSERT INTO timers (id, rule, kind, due_at, payload, grp) VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (grp, id) DO UPDATE SET rule=excluded.rule, kind=excluded.kind,"
    " due_at=excluded.due_at, payload=excluded.payload"
)


def outbox_entry(row: Sequence[Any]) -> OutboxEntry:
    key, payload, state, attempts, delivered_to, created, next_at, error = row
    return OutboxEntry(
        key,
        json.loads(payload),
        state,
        int(attempts),
        json.loads(delivered_to),
        created,
        next_at,
        error,
    )


class PgTimers:
    """Pending timers as the engine's synchronous `TimerPersistence`, on a connection of its
    own (a timer changes rarely; one row's write on a local server is a fraction of a ms).
    In a fleet each worker keeps its own (`scope`, its name)."""

    def __init__(
        self, url: str, password: str | None = None, scope: Callable[[], str] = lambda: ""
    ) -> None:
        self._conn = connect(url, password)
        self._scope = scope

    def save(self, record: TimerRecord) -> None:
        self._conn.execute(
            TIMER_UPSERT.encode(),
            (
                record.id,
                record.rule,
                str(record.kind),
                record.due_at,
                dumps(record.payload),
                self._scope(),
            ),
        )

    def delete(self, timer_id: str) -> None:
        self._conn.execute(
            b"DELETE FROM timers WHERE id = %s AND grp = %s", (timer_id, self._scope())
        )

    def load_all(self) -> list[TimerRecord]:
        rows = self._conn.execute(
            b"SELECT id, rule, kind, due_at, payload FROM timers WHERE grp = %s",
            (self._scope(),),
        ).fetchall()
        return [
            TimerRecord.from_json(
                {
                    "id": r[0],
                    "rule": r[1],
                    "kind": r[2],
                    "due_at": r[3].isoformat(),
                    "payload": json.loads(r[4]),
                }
            )
            for r in rows
        ]

    def close(self) -> None:
        self._conn.close()


def _journal_rows(events: Sequence[Event]) -> list[tuple[datetime, str, str, str]]:
    return [(e.at, e.name, e.account, event_json(e)) for e in events]


# A change identity's key that PostgreSQL's text cannot hold (a vendor id with a lone
# surrogate, JSON's "\\ud800", or a NUL) is kept as the hex of its exact bytes behind this
# mark; so is a key that itself starts with the mark, so every key reads back exactly and
# every other key is stored as it always was.
_ESCAPED = "\uffff"


def _key(key: str) -> str:
    return key if _plain(key) else _ESCAPED + key.encode("utf-8", "surrogatepass").hex()


def _plain(key: str) -> bool:
    if "\x00" in key or key.startswith(_ESCAPED):
        return False
    if key.isascii():
        return True
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return True


def _key_read(stored: str) -> str:
    if stored.startswith(_ESCAPED):
        return bytes.fromhex(stored[len(_ESCAPED) :]).decode("utf-8", "surrogatepass")
    return str(stored)
