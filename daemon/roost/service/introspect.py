"""The daemon's answers to `roost status`, `roost events`, `roost outbox` and
`roost notify-test` on the control socket (`roost trace`/`reload` are in `control`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from roost import __version__
from roost.core.bus import Overflow
from roost.core.codec import event_to_dict
from roost.core.events import Event
from roost.service.control import Handler, Stream
from roost.service.notify_test import send_test, targets
from roost.service.observe import Observer
from roost.store.sqlite import OutboxEntry

if TYPE_CHECKING:
    from roost.service.runtime import Runtime

VIEWER_BUFFER = 256  # batches a live viewer may lag behind before batches are dropped for it
JOURNAL_LIMIT = 1000


def _age_s(at: datetime | None, now: datetime) -> float | None:
    return None if at is None else round(max(0.0, (now - at).total_seconds()), 1)


def outbox_row(entry: OutboxEntry) -> dict[str, object]:
    return {
        "key": entry.key,
        "state": entry.state,
        "title": entry.payload.get("title"),
        "rule": entry.payload.get("rule"),
        "attempts": entry.attempts,
        "created_at": entry.created_at.isoformat(),
        "next_attempt_at": entry.next_attempt_at.isoformat(),
        "last_error": entry.last_error,
    }


async def status(runtime: Runtime, observer: Observer) -> dict[str, Any]:
    now = datetime.now(UTC)
    providers = {a.name: a.provider for a in runtime.settings.accounts}
    accounts = []
    for provider in runtime.providers:
        name = provider.account
        acc = runtime.state.account(name)
        news = observer.accounts.get(name)
        state, degraded = runtime.state.shown_state(name)
        health = runtime.state.payload_health(name)
        accounts.append(
            {
                "name": name,
                "provider": providers.get(name, type(provider).__name__),
                "state": str(state),
                "detail": degraded or (news.detail if news else ""),
                "unreadable_fields": health.problem_count,
                "unreadable_fields_total": health.problems_total,
                "payloads_skipped": health.rejected_total,
                "since": news.since.isoformat() if news and news.since else None,
                "last_event_age_s": _age_s(acc.last_event_at, now),
                "reconnects": max(0, news.connects - 1) if news else 0,
                "lag_s": None if news is None or news.lag_s is None else round(news.lag_s, 3),
                "devices": len(acc.devices),
            }
        )
    outbox = _count(await runtime.store.outbox_list())
    last = max(
        (a.last_event_at for a in runtime.state.accounts.values() if a.last_event_at), default=None
    )
    dropped = {n: s.dropped for n, s in runtime.bus.stats().items() if s.dropped}
    return {
        "version": __version__,
        "pid": os.getpid(),
        "started": observer.started.isoformat(),
        "uptime_s": round((now - observer.started).total_seconds(), 1),
        "dry_run": runtime.dispatcher.dry_run,
        "accounts": accounts,
        "rules": sorted(runtime.engine.rules),
        "last_event_age_s": _age_s(last, now),
        "events_seen": sum(observer.events.values()),
        "commands_in_flight": len(observer.open),
        "outbox": outbox,
        "bus_dropped": dropped,
    }


def _count(entries: Iterable[OutboxEntry]) -> dict[str, int]:
    counts = {"pending": 0, "dead": 0}
    for entry in entries:
        counts[entry.state] = counts.get(entry.state, 0) + 1
    return counts


class EventFilter:
    """Event names, a device (id or name) and an account; each empty means any."""

    def __init__(self, runtime: Runtime, request: dict[str, Any]) -> None:
        names = request.get("event") or []
        self.names = {str(n) for n in ([names] if isinstance(names, str) else names)}
        self.device = str(request.get("device") or "").lower()
        self.account = str(request.get("account") or "")
        self._runtime = runtime

    def __call__(self, data: dict[str, Any]) -> bool:
        if self.names and data.get("event") not in self.names:
            return False
        if self.account and data.get("account") != self.account:
            return False
        if self.device:
            device_id = str(data.get("device") or "")
            if device_id.lower() == self.device:
                return True
            device = self._runtime.state.device(device_id) if device_id else None
            return device is not None and device.name.lower() == self.device
        return True


def service_commands(runtime: Runtime, observer: Observer) -> dict[str, Handler]:
    """`status`, `events`, `outbox` and `notify-test` for the control socket."""

    async def status_command(req: dict[str, Any]) -> dict[str, Any] | Stream:
        return await status(runtime, observer)

    async def events_command(req: dict[str, Any]) -> dict[str, Any] | Stream:
        wanted = EventFilter(runtime, req)
        if req.get("follow"):
            return Stream(_live(runtime, wanted))
        limit = min(int(req.get("limit", 20)), JOURNAL_LIMIT)
        single = wanted.names.copy().pop() if len(wanted.names) == 1 else None
        entries = await runtime.store.journal(JOURNAL_LIMIT, single)
        found = [{"event": e.event, **e.body} for e in entries]
        return {"events": [d for d in found if wanted(d)][-limit:]}

    async def outbox_command(req: dict[str, Any]) -> dict[str, Any] | Stream:
        key = req.get("retry")
        if key is not None:
            return {"retried": await runtime.store.outbox_retry(str(key), datetime.now(UTC))}
        return {"entries": [outbox_row(e) for e in await runtime.store.outbox_list()]}

    async def notify_test_command(req: dict[str, Any]) -> dict[str, Any] | Stream:
        tag = req.get("tag")
        results = await send_test(targets(runtime.settings), None if tag is None else str(tag))
        return {"results": [r.to_json() for r in results], "sent_by": "daemon"}

    return {
        "status": status_command,
        "events": events_command,
        "outbox": outbox_command,
        "notify-test": notify_test_command,
    }


async def _live(runtime: Runtime, wanted: EventFilter) -> AsyncIterator[dict[str, Any]]:
    """Live events for one viewer. Its subscription drops batches when the viewer lags
    (it never holds the bus up) and says how many it dropped."""
    name = f"viewer-{id(wanted):x}"
    inbox = runtime.bus.subscribe(name, buffer=VIEWER_BUFFER, overflow=Overflow.DROP)
    reported = 0
    yield {"following": True}
    async with inbox:
        async for batch in inbox:
            dropped = runtime.bus.stats().get(name)
            if dropped is not None and dropped.dropped > reported:
                yield {"event": "_dropped", "count": dropped.dropped - reported}
                reported = dropped.dropped
            for data in _selected(batch, wanted):
                yield data


def _selected(batch: Iterable[Event], wanted: EventFilter) -> list[dict[str, Any]]:
    return [d for d in (event_to_dict(e) for e in batch) if wanted(d)]
