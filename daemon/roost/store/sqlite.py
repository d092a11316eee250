"""The durable state of the daemon: one SQLite file in the state directory.

It holds vendor tokens, small provider values (cursors), the notification outbox, rule
state and pending timers, the last known state of each home, the smoke/CO alarms roost
pushed itself (until they clear), and an append-only event journal. WAL mode; versioned
migrations (`PRAGMA user_version`); the file is owner-only. Every call runs in a worker
thread (one at a time) so the event loop never blocks on disk.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from roost.core.codec import dumps, dumps_plain, event_json
from roost.core.events import Event
from roost.core.redact import remember
from roost.core.timers import TimerRecord
from roost.host.safefs import UnsafePath, private_file, refuse_links
from roost.providers.base import TokenSet

if TYPE_CHECKING:
    from roost.store.interface import StateStore, StoredTimers

T = TypeVar("T")

FILE_NAME = "roost.db"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tokens (
        account TEXT PRIMARY KEY,
        access_token TEXT NOT NULL,
        refresh_token TEXT,
        expires_at TEXT,
        scope TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE provider_memory (
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, key)
    );
    CREATE TABLE outbox (
        key TEXT PRIMARY KEY,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered_to TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        finished_at TEXT
    );
    CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
    CREATE TABLE timers (
        id TEXT PRIMARY KEY,
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        due_at TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE rule_state (
        rule TEXT PRIMARY KEY,
        state TEXT NOT NULL
    );
    CREATE TABLE home_state (
        account TEXT PRIMARY KEY,
        snapshot TEXT NOT NULL,
        saved_at TEXT NOT NULL
    );
    CREATE TABLE journal (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        account TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX journal_at ON journal (at);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE change_versions (
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (account, key)
    );
    """,
    # The smoke/CO alarms roost pushed itself, until they clear (notify/alerts.py): their
    # clearing is roost's to push, after a restart too.
    """
    CREATE TABLE alarms_pushed (
        account TEXT NOT NULL,
        device TEXT NOT NULL,
        alarm TEXT NOT NULL,
        PRIMARY KEY (account, device, alarm)
    );
    """,
)


# Sorts alarm and urgent notifications before the rest (the payload is Notification.to_dict).
_MUST_GO_OUT_FIRST = (
    "(json_extract(payload, '$.alarm') IS 1 OR json_extract(payload, '$.priority') IS 'urgent')"
    " DESC"
)


class StoreError(RuntimeError):
    pass


@dataclass(frozen=True)
class OutboxEntry:
    key: str
    payload: dict[str, Any]
    state: str  # pending, delivered, dead
    attempts: int
    delivered_to: list[str]
    created_at: datetime
    next_attempt_at: datetime
    last_error: str


@dataclass(frozen=True)
class JournalEntry:
    at: datetime
    event: str
    account: str
    body: dict[str, Any]


def _iso(value: datetime) -> str:
    # Every event's time is already UTC: no new datetime per journal row for it.
    return value.isoformat() if value.tzinfo is UTC else value.astimezone(UTC).isoformat()


def _journal_row(event: Event) -> tuple[str, str, str, str]:
    """(at, event, account, body): an event time in UTC is written once for both."""
    at = event.at
    if at.__class__ is datetime and at.tzinfo is UTC:
        text = at.isoformat()
        return text, event.name, event.account, event_json(event, f'"{text}"')
    return _iso(at), event.name, event.account, event_json(event)


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def open_connection(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database with owner-only permissions, and migrate it.
    The process's first connection to the file; any further one is `connect`'s."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        private_file(path)
    except UnsafePath as exc:
        raise StoreError(str(exc)) from None
    conn = connect(path)
    migrate(conn)
    return conn


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the database, without opening the file outside SQLite: closing any
    descriptor of the file drops every lock this process holds on it (POSIX record locks),
    SQLite's too. Another process closing its connection (a `sqlite3` shell, a backup) then
    took roost's connections for gone, checkpointed and deleted the -wal and -shm files, and
    every later commit of roost went to a deleted file: lost to any reader and to the next
    start."""
    # SQLite opens these by name, following links: a planted link would be written as root.
    siblings = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
    try:
        refuse_links(siblings)
    except UnsafePath as exc:
        raise StoreError(str(exc)) from None
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a crash of the process (kill -9) without an
    # fsync per commit; a power cut may lose the last moments, never corrupt the file.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the state database is at schema {version}, newer than this roost "
            f"({len(MIGRATIONS)}); upgrade roost or restore a backup"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, script.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


class Store:
    """Async access to the state database; one writer thread, short transactions."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._limiter = anyio.CapacityLimiter(1)
        # The connection's owner at any moment. The limiter alone does not guarantee it:
        # anyio before 4.14 hands a freed token to a waiter only when the waiter runs, so a
        # task reaching `acquire` in between got in too, and two worker threads ran
        # transactions on this one connection ("cannot start a transaction within a
        # transaction"). `close()` runs on the event loop's thread and takes it as well.
        self._conn_lock = threading.Lock()
        self._versions: list[tuple[str, str, int, Any]] = []
        self._versions_lock = threading.Lock()

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        path = state_dir / FILE_NAME
        return cls(open_connection(path), path)

    def close(self) -> None:
        with self._conn_lock:
            self._write_versions(self._conn)
            self._conn.close()

    async def aclose(self) -> None:
        self.close()

    def timer_persistence(self) -> StoredTimers:
        return StoreTimers(self.path)

    async def _run(self, work: Callable[[sqlite3.Connection], T], abandon: bool = False) -> T:
        """`work` on the connection, in the store's thread. `abandon`: a caller that stops
        waiting (a read it bounds) leaves the thread to finish alone; `_conn_lock` keeps
        the connection that thread's until then."""

        def run(conn: sqlite3.Connection) -> T:
            with self._conn_lock:
                self._write_versions(conn)  # whatever was reserved before this call lands first
                return work(conn)

        return await anyio.to_thread.run_sync(
            run, self._conn, limiter=self._limiter, abandon_on_cancel=abandon
        )

    def _transaction(
        self, work: Callable[[sqlite3.Connection], T]
    ) -> Callable[[sqlite3.Connection], T]:
        def run(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return run

    async def _write(self, sql: str, params: Sequence[Any]) -> None:
        await self._run(self._transaction(lambda c: c.execute(sql, params)))

    # ---- tokens (the TokenStore seam) -----------------------------------------------

    async def load_token(self, account: str) -> TokenSet | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT access_token, refresh_token, expires_at, scope FROM tokens"
                " WHERE account = ?",
                (account,),
            ).fetchone()
        )
        if row is None:
            return None
        return TokenSet(row[0], row[1], _parse(row[2]), row[3])

    async def save_token(self, account: str, tokens: TokenSet) -> None:
        """One transaction: the old token set stays until the new one is on disk."""
        expires = _iso(tokens.expires_at) if tokens.expires_at else None
        await self._write(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(account) DO UPDATE SET"
            " access_token=excluded.access_token, refresh_token=excluded.refresh_token,"
            " expires_at=excluded.expires_at, scope=excluded.scope,"
            " updated_at=excluded.updated_at",
            (
                account,
                tokens.access_token,
                tokens.refresh_token,
                expires,
                tokens.scope,
                _iso(datetime.now(UTC)),
            ),
        )

    # ---- provider memory ------------------------------------------------------------

    async def memory_get(self, account: str, key: str) -> str | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT value FROM provider_memory WHERE account = ? AND key = ?", (account, key)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def memory_put(self, account: str, key: str, value: str) -> None:
        await self._write(
            "INSERT INTO provider_memory VALUES (?, ?, ?)"
            " ON CONFLICT(account, key) DO UPDATE SET value=excluded.value",
            (account, key, value),
        )

    # ---- notification outbox ----------------------------------------------------------

    async def outbox_add(self, key: str, payload: dict[str, Any], at: datetime) -> bool:
        """Commit a notification before it is sent. False if the key is already there."""

        def add(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (key, payload, state, created_at, next_attempt_at)"
                " VALUES (?, ?, 'pending', ?, ?)",
                (key, dumps(payload), _iso(at), _iso(at)),
            )
            return cursor.rowcount == 1

        return await self._run(self._transaction(add))

    async def outbox_due(
        self, now: datetime, horizon: datetime | None = None, limit: int = 100
    ) -> list[OutboxEntry]:
        """Pending entries due by `now`, and any planned beyond `horizon`: no retry is ever
        planned that far ahead, so such an entry means the wall clock jumped back.
        Alarms and urgent ones come first: a backlog of ordinary ones (deliveries in flight
        count against `limit`) must not keep an alarm out of the batch."""
        beyond = _iso(horizon) if horizon else "9999"
        rows = await self._run(
            lambda c: c.execute(
                "SELECT * FROM outbox WHERE state = 'pending'"
                " AND (next_attempt_at <= ? OR next_attempt_at > ?)"
                f" ORDER BY {_MUST_GO_OUT_FIRST}, created_at LIMIT ?",
                (_iso(now), beyond, limit),
            ).fetchall()
        )
        return [_entry(row) for row in rows]

    async def outbox_next_due(self) -> datetime | None:
        row = await self._run(
            lambda c: c.execute(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'"
            ).fetchone()
        )
        return _parse(row[0]) if row else None

    async def outbox_list(self, states: Sequence[str] = ("pending", "dead")) -> list[OutboxEntry]:
        marks = ",".join("?" for _ in states)
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT * FROM outbox WHERE state IN ({marks}) ORDER BY created_at", tuple(states)
            ).fetchall()
        )
        return [_entry(row) for row in rows]

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
        await self._write(
            "UPDATE outbox SET state=?, attempts=?, delivered_to=?, next_attempt_at=?,"
            " last_error=?, finished_at=? WHERE key=?",
            (
                state,
                attempts,
                dumps(delivered_to),
                _iso(next_attempt_at),
                last_error,
                _iso(finished_at) if finished_at else None,
                key,
            ),
        )

    async def outbox_retry(self, key: str, now: datetime) -> bool:
        """Put a dead (or pending) entry back to be sent at once."""

        def retry(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE outbox SET state='pending', next_attempt_at=?, finished_at=NULL"
                " WHERE key=? AND state IN ('pending', 'dead')",
                (_iso(now), key),
            )
            return cursor.rowcount == 1

        return await self._run(self._transaction(retry))

    async def outbox_prune(self, delivered_before: datetime) -> int:
        """Forget notifications delivered before then (dead ones stay for `roost outbox`)."""

        def prune(conn: sqlite3.Connection) -> int:
            return int(
                conn.execute(
                    "DELETE FROM outbox WHERE state = 'delivered' AND finished_at < ?",
                    (_iso(delivered_before),),
                ).rowcount
            )

        return await self._run(self._transaction(prune))

    # ---- timers and rule state ----------------------------------------------------------

    async def timer_put(
        self, timer_id: str, rule: str, kind: str, due_at: datetime, payload: dict[str, Any]
    ) -> None:
        await self._write(
            "INSERT INTO timers VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " rule=excluded.rule, kind=excluded.kind, due_at=excluded.due_at,"
            " payload=excluded.payload",
            (timer_id, rule, kind, _iso(due_at), dumps(payload)),
        )

    async def timer_delete(self, timer_id: str) -> None:
        await self._write("DELETE FROM timers WHERE id = ?", (timer_id,))

    async def timers(self) -> list[tuple[str, str, str, datetime, dict[str, Any]]]:
        rows = await self._run(
            lambda c: c.execute("SELECT id, rule, kind, due_at, payload FROM timers").fetchall()
        )
        return [(r[0], r[1], r[2], datetime.fromisoformat(r[3]), json.loads(r[4])) for r in rows]

    async def rule_state_put(self, states: dict[str, dict[str, Any]]) -> None:
        def put(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO rule_state VALUES (?, ?)"
                " ON CONFLICT(rule) DO UPDATE SET state=excluded.state",
                [(rule, dumps(state)) for rule, state in states.items()],
            )

        await self._run(self._transaction(put))

    async def rule_states(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(lambda c: c.execute("SELECT rule, state FROM rule_state").fetchall())
        return {str(r[0]): json.loads(r[1]) for r in rows}

    # ---- last known state of each home --------------------------------------------------

    async def home_put(self, account: str, snapshot: dict[str, Any], at: datetime) -> None:
        await self.homes_put([(account, dumps(snapshot))], at)

    async def homes_put(self, homes: Sequence[tuple[str, str]], at: datetime) -> None:
        """Several homes (account, snapshot as JSON text) in one trip and one transaction
        (with thousands of accounts, a trip per home was most of the daemon's work under
        load)."""
        saved_at = _iso(at)

        def put(conn: sqlite3.Connection) -> None:
            rows = [(account, snapshot, saved_at) for account, snapshot in homes]
            conn.executemany(
                "INSERT INTO home_state VALUES (?, ?, ?) ON CONFLICT(account) DO UPDATE SET"
                " snapshot=excluded.snapshot, saved_at=excluded.saved_at",
                rows,
            )

        await self._run(self._transaction(put))

    async def homes(self) -> dict[str, dict[str, Any]]:
        rows = await self._run(
            lambda c: c.execute("SELECT account, snapshot FROM home_state").fetchall()
        )
        return {str(r[0]): json.loads(r[1]) for r in rows}

    def reserve_versions(self, account: str, items: Sequence[tuple[str, int, Any]]) -> None:
        """Queue change identities (see state.AccountState.versions) without waiting.

        They are written, in one transaction, before any later store call does its own work
        (so before an outbox commit that depends on them), or by `flush()`. This keeps the
        store off the event path: a batch of changes costs an append here, not a commit.
        """
        with self._versions_lock:
            self._versions.extend((account, k, v, value) for k, v, value in items)

    def _write_versions(self, conn: sqlite3.Connection) -> None:
        with self._versions_lock:
            pending, self._versions = self._versions, []
        if not pending:
            return
        # A key changed several times since the last write keeps its latest version only
        # (they were reserved in order): the same rows once the transaction commits.
        latest = {(a, key): (version, value) for a, key, version, value in pending}
        self._transaction(
            lambda c: c.executemany(
                "INSERT INTO change_versions VALUES (?, ?, ?, ?) ON CONFLICT(account, key)"
                " DO UPDATE SET version=excluded.version, value=excluded.value",
                [(a, _key(key), v, dumps_plain(value)) for (a, key), (v, value) in latest.items()],
            )
        )(conn)

    async def flush(self) -> None:
        """Write everything queued (versions) now."""
        await self._run(lambda conn: None)

    async def versions(self, account: str) -> dict[str, tuple[int, Any]]:
        rows = await self._run(
            lambda c: c.execute(
                "SELECT key, version, value FROM change_versions WHERE account = ?", (account,)
            ).fetchall()
        )
        return {_key_read(r[0]): (int(r[1]), json.loads(r[2])) for r in rows}

    # ---- the alarms roost pushed itself -----------------------------------------------

    async def alarms_pushed(self) -> list[tuple[str, str, str]]:
        """(account, device, "smoke" | "co") of each alarm roost pushed itself, not yet ok.
        A caller may stop waiting (the start bounds it: `Alerts.restore`)."""
        rows = await self._run(
            lambda c: c.execute("SELECT account, device, alarm FROM alarms_pushed").fetchall(),
            abandon=True,
        )
        return [(str(r[0]), _key_read(r[1]), str(r[2])) for r in rows]

    async def alarm_pushed_put(self, account: str, device: str, alarm: str) -> None:
        await self._write(
            "INSERT OR IGNORE INTO alarms_pushed VALUES (?, ?, ?)", (account, _key(device), alarm)
        )

    async def alarm_pushed_delete(self, account: str, device: str, alarm: str) -> None:
        await self._write(
            "DELETE FROM alarms_pushed WHERE account = ? AND device = ? AND alarm = ?",
            (account, _key(device), alarm),
        )

    # ---- the event journal ---------------------------------------------------------------

    async def journal_append(self, entries: Sequence[JournalEntry]) -> None:
        if not entries:
            return

        def append(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO journal (at, event, account, body) VALUES (?, ?, ?, ?)",
                [(_iso(e.at), e.event, e.account, dumps_plain(e.body)) for e in entries],
            )

        await self._run(self._transaction(append))

    async def journal_events(self, events: Sequence[Event]) -> None:
        """Journal `events`: each becomes its row (`event_json`, the same text
        `journal_append` writes for `event_to_dict`) in the store's thread, not on the
        event loop, and all are written in one transaction."""
        if not events:
            return

        def append(conn: sqlite3.Connection) -> None:
            # Rows made one at a time as SQLite asks for them: it lets go of the GIL for each
            # insert, so the event loop never waits behind the making of a whole batch.
            conn.executemany(
                "INSERT INTO journal (at, event, account, body) VALUES (?, ?, ?, ?)",
                map(_journal_row, events),
            )

        await self._run(self._transaction(append))

    async def journal(self, limit: int = 1000, event: str | None = None) -> list[JournalEntry]:
        where, params = ("WHERE event = ?", (event,)) if event else ("", ())
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT at, event, account, body FROM journal {where} ORDER BY seq DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        )
        return [
            JournalEntry(datetime.fromisoformat(r[0]), r[1], r[2], json.loads(r[3]))
            for r in reversed(rows)
        ]

    async def journal_since(
        self, since: datetime, events: Sequence[str], limit: int = 100_000
    ) -> list[JournalEntry]:
        """Entries of these event names from `since` on, oldest first (at most `limit`,
        the newest ones kept)."""
        marks = ",".join("?" for _ in events)
        rows = await self._run(
            lambda c: c.execute(
                f"SELECT at, event, account, body FROM journal WHERE at >= ?"
                f" AND event IN ({marks}) ORDER BY seq DESC LIMIT ?",
                (_iso(since), *events, limit),
            ).fetchall()
        )
        return [
            JournalEntry(datetime.fromisoformat(r[0]), r[1], r[2], json.loads(r[3]))
            for r in reversed(rows)
        ]

    async def journal_prune(self, older_than: datetime, keep_rows: int) -> int:
        """Retention by age and by size; returns how many entries went."""

        def prune(conn: sqlite3.Connection) -> int:
            gone = conn.execute("DELETE FROM journal WHERE at < ?", (_iso(older_than),)).rowcount
            gone += conn.execute(
                "DELETE FROM journal WHERE seq <= (SELECT MAX(seq) FROM journal) - ?",
                (keep_rows,),
            ).rowcount
            return int(gone)

        return await self._run(self._transaction(prune))

    # ---- small values -------------------------------------------------------------------

    async def meta_get(self, key: str) -> str | None:
        row = await self._run(
            lambda c: c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        )
        return None if row is None else str(row[0])

    async def meta_put(self, key: str, value: str) -> None:
        await self._write(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (key, value),
        )


def _entry(row: Sequence[Any]) -> OutboxEntry:
    key, payload, state, attempts, delivered_to, created, next_at, error, _ = row
    return OutboxEntry(
        key,
        json.loads(payload),
        state,
        int(attempts),
        json.loads(delivered_to),
        datetime.fromisoformat(created),
        datetime.fromisoformat(next_at),
        error,
    )


class StoreTokens:
    """The store as a provider's `TokenStore`."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def load(self, account: str) -> TokenSet | None:
        tokens = await self._store.load_token(account)
        if tokens is not None:
            remember(tokens.access_token, tokens.refresh_token)
        return tokens

    async def save(self, account: str, tokens: TokenSet) -> None:
        remember(tokens.access_token, tokens.refresh_token)  # redacted wherever they appear
        await self._store.save_token(account, tokens)


class StoreMemory:
    """The store as a provider's `ProviderMemory`."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    async def get(self, account: str, key: str) -> str | None:
        return await self._store.memory_get(account, key)

    async def put(self, account: str, key: str, value: str) -> None:
        await self._store.memory_put(account, key, value)


class StoreTimers:
    """Pending timers in the store, as the engine's (synchronous) `TimerPersistence`.

    Its own connection: a timer changes rarely, and a write of one row in WAL mode costs
    tens of microseconds, so it is done in place rather than through the worker thread.
    """

    def __init__(self, path: Path) -> None:
        self._conn: sqlite3.Connection = connect(path)  # the store opened the file

    def save(self, record: TimerRecord) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO timers VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " rule=excluded.rule, kind=excluded.kind, due_at=excluded.due_at,"
                " payload=excluded.payload",
                (
                    record.id,
                    record.rule,
                    str(record.kind),
                    record.due_at.isoformat(),
                    dumps(record.payload),
                ),
            )

    def delete(self, timer_id: str) -> None:
        with self._conn:
            self._conn.execute("DELETE FROM timers WHERE id = ?", (timer_id,))

    def load_all(self) -> list[TimerRecord]:
        rows = self._conn.execute("SELECT id, rule, kind, due_at, payload FROM timers").fetchall()
        return [
            TimerRecord.from_json(
                {
                    "id": r[0],
                    "rule": r[1],
                    "kind": r[2],
                    "due_at": r[3],
                    "payload": json.loads(r[4]),
                }
            )
            for r in rows
        ]

    def close(self) -> None:
        self._conn.close()


def _key(key: str) -> str | bytes:
    """A change identity's key as SQLite can hold it: a vendor's id can carry a lone
    surrogate (JSON's "\\ud800"), which no TEXT can; such a key is kept as its exact bytes."""
    if key.isascii():
        return key
    try:
        key.encode()
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogatepass")
    return key


def _key_read(stored: str | bytes) -> str:
    return stored.decode("utf-8", "surrogatepass") if isinstance(stored, bytes) else str(stored)
