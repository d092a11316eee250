"""Alerts about roost itself that a person must hear, sent like any urgent notification:
an account that lost its authorization stops, and someone has to act."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from anyio.streams.memory import MemoryObjectReceiveStream

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


async def watch(
    inbox: MemoryObjectReceiveStream[Sequence[Event]],
    notify: Callable[[Notification], Awaitable[None]],
) -> None:
    async with inbox:
        async for batch in inbox:
            for event in batch:
                alert = alert_for(event)
                if alert is not None:
                    await notify(alert)
