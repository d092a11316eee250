"""What the service sees on the bus: commands in flight, counters, per-account news.

One reader, in memory and cheap, that everything "about" the daemon reads from: the
SIGTERM drain (which commands are still open), `roost status`, the STATUS= line and the
Prometheus endpoint. It taps the bus (`Bus.tap`): it sees every batch as it is published,
in order (it must see every command's outcome to know when the drain is done), for a few
dict operations per event and no task woken per batch (a woken reader was ~5 % of the
daemon's CPU at 1,000 changes/s).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import structlog

from roost.core.bus import Batch, Bus
from roost.core.commands import FailureReason
from roost.core.events import (
    AccountStatus,
    CommandOutcome,
    ConnectionState,
    NotificationOutcome,
    Outcome,
)
from roost.core.ids import new_id

log = structlog.get_logger(__name__)

OPEN = frozenset({Outcome.QUEUED, Outcome.SENT})


@dataclasses.dataclass
class AccountNews:
    state: ConnectionState = ConnectionState.CONNECTING
    detail: str = ""
    since: datetime | None = None
    connects: int = 0  # how many times it reached CONNECTED (reconnects = connects - 1)
    lag_s: float | None = None  # receipt time minus event time, for the latest live event


class Observer:
    def __init__(self, bus: Bus) -> None:
        self.open: dict[str, CommandOutcome] = {}  # command id → its latest outcome
        self.events: Counter[str] = Counter()  # by event name
        self.commands: Counter[str] = Counter()  # by final (or SENT/QUEUED) outcome
        self.notifications: Counter[str] = Counter()  # by delivery
        self.accounts: dict[str, AccountNews] = {}
        self.started = datetime.now(UTC)
        self._idle = anyio.Event()
        self._idle.set()
        bus.tap("observer", self.see_batch)

    def see_batch(self, batch: Batch) -> None:
        now = 0.0  # when the batch was published: the clock read once, and only if needed
        for event in batch:
            self.events[event.name] += 1
            if isinstance(event, CommandOutcome):
                self._command(event)
            elif isinstance(event, NotificationOutcome):
                self.notifications[str(event.delivery)] += 1
            elif isinstance(event, AccountStatus):
                news = self.accounts.setdefault(event.account, AccountNews())
                if event.state is ConnectionState.CONNECTED and news.state is not event.state:
                    news.connects += 1
                news.state, news.detail, news.since = event.state, event.detail, event.at
            elif event.account and not event.context.catch_up:
                now = now or time.time()
                news = self.accounts.get(event.account) or self.accounts.setdefault(
                    event.account, AccountNews()
                )
                news.lag_s = max(0.0, now - event.at.timestamp())

    def _command(self, event: CommandOutcome) -> None:
        self.commands[str(event.outcome)] += 1
        if event.outcome in OPEN:
            self.open[event.command] = event
            if self._idle.is_set():
                self._idle = anyio.Event()
        else:
            self.open.pop(event.command, None)
            if not self.open:
                self._idle.set()

    async def drain(self, timeout_s: float) -> list[CommandOutcome]:
        """Wait until no command is queued or awaiting its echo, at most `timeout_s`.
        Returns the records to publish for the commands still open then."""
        with anyio.move_on_after(timeout_s):
            while self.open:
                await self._idle.wait()
                await anyio.lowlevel.checkpoint()  # let a last outcome batch arrive
        return [_abandoned(last) for last in self.open.values()]


def _abandoned(last: CommandOutcome) -> CommandOutcome:
    """What became of a command roost stopped before it finished: never sent → dropped;
    sent but not confirmed → failed, unconfirmed (it may still have been applied)."""
    now = datetime.now(UTC)
    if last.outcome is Outcome.QUEUED:
        outcome, reason, failure = Outcome.DROPPED, "roost stopped before sending it", None
    else:
        outcome = Outcome.FAILED
        reason = "roost stopped before the device confirmed it"
        failure = FailureReason.UNCONFIRMED
    return dataclasses.replace(
        last, id=new_id(), at=now, outcome=outcome, reason=reason, failure=failure, latency_s=None
    )
