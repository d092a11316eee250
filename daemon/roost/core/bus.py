"""In-process fan-out of events, bounded, with an explicit overflow policy per subscriber.

Events travel in batches (all the events one snapshot or patch produced), which keeps the
per-event cost of the inboxes off the hot path. Each subscriber reads its own `Inbox`. A
subscriber may declare an `Interest`: event kinds it has no use for, whose batches the bus
does not send it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
import structlog

from roost.core.events import Event
from roost.core.inbox import Inbox

log = structlog.get_logger(__name__)

Batch = Sequence[Event]
# A reader called with every batch as it is published, in the publisher's turn: for a few
# dict operations per event (counters, a filter), cheaper than a task woken per batch.
# It must return at once and never raise.
Tap = Callable[[Batch], None]


class Overflow(StrEnum):
    BLOCK = "block"  # back-pressure: the publisher waits (the engine must see everything)
    DROP = "drop"  # the batch is dropped and counted (live viewers, narrators)


@dataclass
class Interest:
    """Event kinds (`Event.name`) a subscriber has no use for: a batch made of nothing
    else is not sent to it. Its owner replaces `ignored` when its needs change, and every
    batch published from then on is sent or left out by the new set (a batch already in
    the subscriber's inbox stays there)."""

    ignored: frozenset[str] = frozenset()  # nothing: every batch is sent


@dataclass
class SubscriberStats:
    batches: int = 0
    delivered: int = 0
    dropped: int = 0
    blocked: int = 0
    ignored: int = 0  # batches its interest left out


@dataclass
class _Subscriber:
    name: str
    inbox: Inbox[Batch]
    overflow: Overflow
    interest: Interest | None
    stats: SubscriberStats = field(default_factory=SubscriberStats)


class Bus:
    def __init__(self) -> None:
        # A tuple, replaced when a subscriber comes or goes: a publish walks it without a copy.
        self._subscribers: tuple[_Subscriber, ...] = ()
        self._taps: tuple[tuple[str, Tap], ...] = ()
        self.published = 0

    def subscribe(
        self,
        name: str,
        *,
        buffer: int = 1024,
        overflow: Overflow = Overflow.BLOCK,
        interest: Interest | None = None,
    ) -> Inbox[Batch]:
        """`interest`: the kinds to leave out, read at every publish (None: all are sent)."""
        inbox = Inbox[Batch](buffer)
        self._subscribers = (*self._subscribers, _Subscriber(name, inbox, overflow, interest))
        return inbox

    def tap(self, name: str, see: Tap) -> None:
        """Call `see` with every batch published from now on, in order, as it is published
        (a tap never holds a publisher and never misses a batch)."""
        self._taps = (*self._taps, (name, see))

    def stats(self) -> dict[str, SubscriberStats]:
        return {s.name: s.stats for s in self._subscribers}

    def backlog(self, name: str) -> tuple[int, int]:
        """(batches subscriber `name` has taken, batches waiting for it)."""
        for sub in self._subscribers:
            if sub.name == name:
                queued = len(sub.inbox)
                return sub.stats.batches - queued, queued
        return 0, 0

    async def publish(self, events: Batch) -> None:
        full = self.offer(events)
        if full is not None:
            await self.overflow(full, events)

    def offer(self, events: Batch) -> list[_Subscriber] | None:
        """`publish` without waiting: `events` go to every subscriber with room for them.
        Returns the subscribers that had none (None if all had room), which the caller
        must pass to `overflow` before it publishes anything else (the state diff's
        hot path, which saves the coroutine of a `publish` per change)."""
        if not events:
            return None
        count = len(events)
        self.published += count
        full: list[_Subscriber] | None = None
        first = events[0].name
        for sub in self._subscribers:
            interest = sub.interest
            if (
                interest is not None
                and first in interest.ignored
                and (count == 1 or _all_in(events, interest))
            ):
                sub.stats.ignored += 1
                continue
            try:
                if not sub.inbox.put(events):
                    if full is None:
                        full = []
                    full.append(sub)
                    continue
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers = tuple(s for s in self._subscribers if s is not sub)
                continue
            stats = sub.stats
            stats.batches += 1
            stats.delivered += count
        for name, see in self._taps:
            try:
                see(events)
            except Exception:  # a reader's bug must not stop the publisher (the stream)
                log.exception("bus tap failed", tap=name)
        return full

    async def overflow(self, full: list[_Subscriber], events: Batch) -> None:
        """The subscribers `offer` found full: wait for room (BLOCK) or drop (DROP)."""
        for sub in full:
            try:
                await self._overflow(sub, events)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers = tuple(s for s in self._subscribers if s is not sub)

    async def _overflow(self, sub: _Subscriber, events: Batch) -> None:
        if sub.overflow is Overflow.DROP:
            sub.stats.dropped += len(events)
            log.warning("bus subscriber lagging, batch dropped", subscriber=sub.name)
            return
        sub.stats.blocked += 1
        await sub.inbox.put_waiting(events)
        sub.stats.batches += 1
        sub.stats.delivered += len(events)

    def close(self) -> None:
        for sub in self._subscribers:
            sub.inbox.end()
        self._subscribers = ()
        self._taps = ()


def _all_in(events: Batch, interest: Interest) -> bool:
    """Every event of `events` is of a kind `interest` ignores."""
    ignored = interest.ignored
    return all(e.name in ignored for e in events)
