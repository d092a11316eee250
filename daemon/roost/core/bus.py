"""In-process fan-out of events, bounded, with an explicit overflow policy per subscriber.

Events travel in batches (all the events one snapshot or patch produced), which keeps the
per-event cost of the memory streams off the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from roost.core.events import Event

log = structlog.get_logger(__name__)

Batch = Sequence[Event]


class Overflow(StrEnum):
    BLOCK = "block"  # back-pressure: the publisher waits (the engine must see everything)
    DROP = "drop"  # the batch is dropped and counted (live viewers, narrators)


@dataclass
class SubscriberStats:
    batches: int = 0
    delivered: int = 0
    dropped: int = 0
    blocked: int = 0


@dataclass
class _Subscriber:
    name: str
    send: MemoryObjectSendStream[Batch]
    overflow: Overflow
    stats: SubscriberStats = field(default_factory=SubscriberStats)


class Bus:
    def __init__(self) -> None:
        self._subscribers: list[_Subscriber] = []
        self.published = 0

    def subscribe(
        self, name: str, *, buffer: int = 1024, overflow: Overflow = Overflow.BLOCK
    ) -> MemoryObjectReceiveStream[Batch]:
        send, receive = anyio.create_memory_object_stream[Batch](buffer)
        self._subscribers.append(_Subscriber(name, send, overflow))
        return receive

    def stats(self) -> dict[str, SubscriberStats]:
        return {s.name: s.stats for s in self._subscribers}

    def backlog(self, name: str) -> tuple[int, int]:
        """(batches subscriber `name` has taken, batches waiting for it)."""
        for sub in self._subscribers:
            if sub.name == name:
                queued = sub.send.statistics().current_buffer_used
                return sub.stats.batches - queued, queued
        return 0, 0

    async def publish(self, events: Batch) -> None:
        if not events:
            return
        self.published += len(events)
        for sub in list(self._subscribers):  # a copy: a gone subscriber is removed below
            try:
                sub.send.send_nowait(events)
                sub.stats.batches += 1
                sub.stats.delivered += len(events)
            except anyio.WouldBlock:
                await self._overflow(sub, events)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(sub)

    async def _overflow(self, sub: _Subscriber, events: Batch) -> None:
        if sub.overflow is Overflow.DROP:
            sub.stats.dropped += len(events)
            log.warning("bus subscriber lagging, batch dropped", subscriber=sub.name)
            return
        sub.stats.blocked += 1
        await sub.send.send(events)
        sub.stats.batches += 1
        sub.stats.delivered += len(events)

    def close(self) -> None:
        for sub in self._subscribers:
            sub.send.close()
        self._subscribers.clear()
