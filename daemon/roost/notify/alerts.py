"""Alerts about roost itself that a person must hear, sent like any urgent notification:
an account that lost its authorization stops, and someone has to act.

`Alerts` taps the bus (`Bus.tap`): every event is looked at as it is published, and only an
alert wakes the task that sends it. Its queue has no bound: alerts are rare (one per account
that fails) and an alert fails open, it is never dropped or held back.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import anyio

from roost.core.bus import Batch, Bus
from roost.core.events import AccountStatus, ConnectionState, Event
from roost.notify.notifier import Notification, Priority


def alert_for(event: Event) -> Notification | None:
    if isinstance(event, AccountStatus) and event.state is ConnectionState.AUTH_FAILED:
        return Notification(
            key=f"roost:auth:{event.account}:{event.id}",
            title=f"roost: account {event.account!r} lost its authorization",
            body=(
                f"{event.detail}. roost has stopped this account; the others keep running. "
                "Renew its token and restart roost."
            ),
            tags=("urgent", "roost"),
            priority=Priority.URGENT,
            created_at=event.at,
            account=event.account,
        )
    return None


class Alerts:
    """The alerts the bus carries, from the moment this is made, handed to `notify` by `run`
    in the order they were published."""

    def __init__(self, bus: Bus) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Notification](math.inf)
        bus.tap("alerts", self.see)

    def see(self, batch: Batch) -> None:
        for event in batch:
            if isinstance(event, AccountStatus):  # the only kind that makes an alert
                alert = alert_for(event)
                if alert is not None:
                    self._send.send_nowait(alert)

    async def run(self, notify: Callable[[Notification], Awaitable[None]]) -> None:
        async for alert in self._receive:
            await notify(alert)
