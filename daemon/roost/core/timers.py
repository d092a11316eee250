"""Pending timers (holds, debounces, schedules) as plain records, due on a `Clock`.

A `TimerRecord` is everything needed to act on a timer later: which rule, what kind, when,
and a JSON-able payload. Records go through a `TimerPersistence` (in memory by default;
the store can keep them in SQLite), so pending holds and the next cron time survive a
restart. On start, `restore()` applies the recovery policy: a timer that fell due while the
daemon was down fires once if it is at most `grace_s` late, and is reported missed otherwise.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import anyio

from roost.core.clock import Clock

DEFAULT_GRACE_S = 300.0
# Due times are wall-clock datetimes; the virtual clock's float arithmetic can land a hair
# before them, which must still count as due.
_EPSILON = timedelta(milliseconds=1)


class TimerKind(StrEnum):
    HOLD = "hold"  # a trigger that must stay true for a while
    DEBOUNCE = "debounce"  # run after a quiet period
    CRON = "cron"  # the next time of a cron schedule
    INTERVAL = "interval"  # the next tick of a fixed interval
    DELAY = "delay"  # the rest of a TOML rule's run, after a `delay` step


@dataclass(frozen=True, slots=True)
class TimerRecord:
    id: str
    rule: str
    kind: TimerKind
    due_at: datetime  # timezone-aware UTC
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "kind": str(self.kind),
            "due_at": self.due_at.isoformat(),
            "payload": self.payload,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimerRecord:
        return cls(
            id=str(data["id"]),
            rule=str(data["rule"]),
            kind=TimerKind(data["kind"]),
            due_at=datetime.fromisoformat(str(data["due_at"])),
            payload=dict(data.get("payload") or {}),
        )


class TimerPersistence(Protocol):
    """Where pending timers are kept between restarts."""

    def save(self, record: TimerRecord) -> None:
        """Insert or replace the record with this id."""

    def delete(self, timer_id: str) -> None:
        """Forget the record (no error if it is unknown)."""

    def load_all(self) -> list[TimerRecord]:
        """Every record saved and not deleted."""


class MemoryTimerPersistence:
    """The default: nothing survives the process, which suits tests and dry runs."""

    def __init__(self) -> None:
        self.records: dict[str, TimerRecord] = {}

    def save(self, record: TimerRecord) -> None:
        self.records[record.id] = record

    def delete(self, timer_id: str) -> None:
        self.records.pop(timer_id, None)

    def load_all(self) -> list[TimerRecord]:
        return list(self.records.values())


OnDue = Callable[[TimerRecord, bool], None]  # (record, late: fired after a restart)
OnMissed = Callable[[TimerRecord], None]


class Timers:
    """The pending timers, in due order, and the task that fires them."""

    def __init__(
        self,
        clock: Clock,
        on_due: OnDue,
        on_missed: OnMissed,
        persistence: TimerPersistence | None = None,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self.clock = clock
        self.persistence: TimerPersistence = persistence or MemoryTimerPersistence()
        self.grace_s = grace_s
        self._on_due = on_due
        self._on_missed = on_missed
        self._pending: dict[str, TimerRecord] = {}
        self._heap: list[tuple[datetime, int, TimerRecord]] = []
        self._order = itertools.count()
        self._sleeping: anyio.CancelScope | None = None
        self._sleeping_until: datetime | None = None

    # ---- what is pending -----------------------------------------------------------

    def get(self, timer_id: str) -> TimerRecord | None:
        return self._pending.get(timer_id)

    def pending(self) -> list[TimerRecord]:
        return sorted(self._pending.values(), key=lambda r: r.due_at)

    def of_rule(self, rule: str) -> list[TimerRecord]:
        return [r for r in self._pending.values() if r.rule == rule]

    # ---- changing them -------------------------------------------------------------

    def add(self, record: TimerRecord) -> None:
        """Schedule (or reschedule: same id) a timer."""
        self._pending[record.id] = record
        self.persistence.save(record)
        heapq.heappush(self._heap, (record.due_at, next(self._order), record))
        if self._sleeping is not None and (
            self._sleeping_until is None or record.due_at < self._sleeping_until
        ):
            self._sleeping.cancel()

    def cancel(self, timer_id: str) -> TimerRecord | None:
        record = self._pending.pop(timer_id, None)
        if record is not None:
            self.persistence.delete(timer_id)
        return record

    def cancel_all(self, ids: Iterable[str]) -> None:
        for timer_id in list(ids):
            self.cancel(timer_id)

    def restore(self, keep: Callable[[TimerRecord], bool]) -> None:
        """Take over the persisted timers of a previous run.

        `keep` says whether a record still means something (its rule and trigger exist).
        Due ones fire now if at most `grace_s` late; older ones are reported missed.
        """
        now = self.clock.now()
        for record in self.persistence.load_all():
            if not keep(record):
                self.persistence.delete(record.id)
                continue
            late_s = (now - record.due_at).total_seconds()
            if late_s <= 0:
                self.add(record)
            elif late_s <= self.grace_s:
                self.persistence.delete(record.id)
                self._on_due(record, True)
            else:
                self.persistence.delete(record.id)
                self._on_missed(record)

    # ---- firing --------------------------------------------------------------------

    async def run(self) -> None:
        """Fire timers as they come due, until cancelled."""
        while True:
            self._fire_due()
            with anyio.CancelScope() as scope:
                self._sleeping = scope
                self._sleeping_until = self._heap[0][0] if self._heap else None
                if self._sleeping_until is None:
                    await anyio.sleep_forever()
                else:
                    delay = (self._sleeping_until - self.clock.now()).total_seconds()
                    await self.clock.sleep(delay)
            self._sleeping = None

    def _fire_due(self) -> None:
        while self._heap:
            due_at, _, record = self._heap[0]
            if due_at > self.clock.now() + _EPSILON:
                return
            heapq.heappop(self._heap)
            if self._pending.get(record.id) is not record:
                continue  # cancelled or rescheduled since
            del self._pending[record.id]
            self.persistence.delete(record.id)
            self._on_due(record, False)
