"""The store interface: what the daemon needs of its durable state, whichever engine keeps
it. `roost.store.sqlite.Store` (SQLite, the default) and `roost.store.postgres.PgStore`
(PostgreSQL, for a fleet of workers) both satisfy it; the contract tests run against both."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from roost.core.events import Event
from roost.core.timers import TimerPersistence
from roost.providers.base import TokenSet
from roost.store.sqlite import JournalEntry, OutboxEntry


class StoredTimers(TimerPersistence, Protocol):
    def close(self) -> None: ...


class StateStore(Protocol):
    async def aclose(self) -> None:
        """Write what is queued and release the connection(s)."""

    def timer_persistence(self) -> StoredTimers:
        """The engine's synchronous view of the timers table (its own connection)."""

    async def load_token(self, account: str) -> TokenSet | None: ...

    async def save_token(self, account: str, tokens: TokenSet) -> None: ...

    async def memory_get(self, account: str, key: str) -> str | None: ...

    async def memory_put(self, account: str, key: str, value: str) -> None: ...

    async def outbox_add(self, key: str, payload: dict[str, Any], at: datetime) -> bool: ...

    async def outbox_due(
        self, now: datetime, horizon: datetime | None = None, limit: int = 100
    ) -> list[OutboxEntry]: ...

    async def outbox_next_due(self) -> datetime | None: ...

    async def outbox_list(
        self, states: Sequence[str] = ("pending", "dead")
    ) -> list[OutboxEntry]: ...

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
    ) -> None: ...

    async def outbox_retry(self, key: str, now: datetime) -> bool: ...

    async def outbox_prune(self, delivered_before: datetime) -> int: ...

    async def timer_put(
        self, timer_id: str, rule: str, kind: str, due_at: datetime, payload: dict[str, Any]
    ) -> None: ...

    async def timer_delete(self, timer_id: str) -> None: ...

    async def timers(self) -> list[tuple[str, str, str, datetime, dict[str, Any]]]: ...

    async def rule_state_put(self, states: dict[str, dict[str, Any]]) -> None: ...

    async def rule_states(self) -> dict[str, dict[str, Any]]: ...

    async def home_put(self, account: str, snapshot: dict[str, Any], at: datetime) -> None: ...

    async def homes_put(self, homes: Sequence[tuple[str, str]], at: datetime) -> None:
        """Several homes, each (account, its snapshot as JSON text: `codec.dumps`)."""

    async def homes(self) -> dict[str, dict[str, Any]]: ...

    def reserve_versions(self, account: str, items: Sequence[tuple[str, int, Any]]) -> None:
        """Queue change identities; written before the next call's own work, or by flush()."""

    async def flush(self) -> None: ...

    async def versions(self, account: str) -> dict[str, tuple[int, Any]]: ...

    async def alarms_pushed(self) -> list[tuple[str, str, str]]:
        """(account, device, "smoke" | "co") of each alarm roost pushed itself, not yet ok."""

    async def alarm_pushed_put(self, account: str, device: str, alarm: str) -> None: ...

    async def alarm_pushed_delete(self, account: str, device: str, alarm: str) -> None: ...

    async def journal_append(self, entries: Sequence[JournalEntry]) -> None: ...

    async def journal_events(self, events: Sequence[Event]) -> None:
        """Journal `events` as `journal_append` would their `event_to_dict` entries."""

    async def journal(self, limit: int = 1000, event: str | None = None) -> list[JournalEntry]: ...

    async def journal_since(
        self, since: datetime, events: Sequence[str], limit: int = 100_000
    ) -> list[JournalEntry]: ...

    async def journal_prune(self, older_than: datetime, keep_rows: int) -> int: ...

    async def meta_get(self, key: str) -> str | None: ...

    async def meta_put(self, key: str, value: str) -> None: ...
