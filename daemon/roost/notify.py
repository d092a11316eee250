"""Push notifications through apprise, routed by tags, retried with back-off.

A target with no tags receives every notification; a tagged target receives the
notifications that carry one of its tags. Delivery outcomes go on the bus.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from roost.bus import Bus
from roost.events import Delivery, NotificationOutcome
from roost.ids import new_id

log = structlog.get_logger(__name__)

QUEUE_SIZE = 1024


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


@dataclass(frozen=True, slots=True)
class Notification:
    key: str  # stable dedupe key: the same notification retried keeps it
    title: str
    body: str
    tags: tuple[str, ...] = ()
    priority: Priority = Priority.NORMAL
    rule: str | None = None
    cause: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class Target:
    url: str
    tags: frozenset[str] = frozenset()

    def wants(self, notification: Notification) -> bool:
        return not self.tags or bool(self.tags.intersection(notification.tags))


class NotifyConfigError(ValueError):
    pass


class _AppriseTarget:
    """One apprise endpoint. apprise is imported lazily: it costs ~0.3 s to load."""

    def __init__(self, target: Target) -> None:
        import apprise

        self.target = target
        self._apprise = apprise.Apprise(asset=apprise.AppriseAsset(app_id="roost"))
        if not self._apprise.add(target.url):
            raise NotifyConfigError(
                f"notify target {_scheme(target.url)}:// is invalid or not allowed"
            )

    async def send(self, notification: Notification) -> bool:
        import apprise

        kind = {
            Priority.LOW: apprise.NotifyType.INFO,
            Priority.NORMAL: apprise.NotifyType.INFO,
            Priority.HIGH: apprise.NotifyType.WARNING,
            Priority.URGENT: apprise.NotifyType.FAILURE,
        }[notification.priority]
        result: Any = await self._apprise.async_notify(
            body=notification.body or notification.title,
            title=notification.title,
            notify_type=kind,
        )
        return bool(result)


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


def restrict_schemes(schemes: Sequence[str]) -> None:
    """Allow only these apprise schemes process-wide (apprise's manager is a singleton)."""
    import apprise

    manager: Any = apprise.NotificationManager
    manager().enable_only(*schemes)


class Notifier:
    def __init__(
        self,
        targets: Sequence[Target],
        bus: Bus,
        *,
        retry_for_s: float = 6 * 3600,
        retry_initial_s: float = 2.0,
        retry_max_s: float = 300.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._targets = [_AppriseTarget(t) for t in targets]
        self._bus = bus
        self._retry_for_s = retry_for_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._now = now or (lambda: datetime.now(UTC))
        send, receive = anyio.create_memory_object_stream[Notification](QUEUE_SIZE)
        self._send: MemoryObjectSendStream[Notification] = send
        self._receive: MemoryObjectReceiveStream[Notification] = receive

    async def submit(self, notification: Notification) -> None:
        await self._send.send(notification)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg, self._receive:
            async for notification in self._receive:
                tg.start_soon(self._deliver, notification)

    async def _deliver(self, notification: Notification) -> None:
        pending = [t for t in self._targets if t.target.wants(notification)]
        routed = len(pending)
        if not pending:
            log.warning("notification matches no target", title=notification.title)
        attempt = 0
        while pending:
            pending = [t for t in pending if not await self._try(t, notification)]
            if not pending:
                break
            attempt += 1
            age = (self._now() - notification.created_at).total_seconds()
            if age >= self._retry_for_s:
                await self._outcome(notification, Delivery.DEAD, len(pending), "gave up")
                log.error("notification given up", title=notification.title, targets=len(pending))
                return
            await self._outcome(notification, Delivery.RETRYING, len(pending), f"attempt {attempt}")
            cap = min(self._retry_max_s, self._retry_initial_s * 2 ** (attempt - 1))
            await anyio.sleep(random.uniform(cap / 2, cap))
        await self._outcome(notification, Delivery.DELIVERED, routed)

    async def _try(self, target: _AppriseTarget, notification: Notification) -> bool:
        try:
            ok = await target.send(notification)
        except Exception:
            log.exception("notification target raised", scheme=_scheme(target.target.url))
            return False
        if not ok:
            log.warning("notification not delivered", scheme=_scheme(target.target.url))
        return ok

    async def _outcome(
        self, notification: Notification, delivery: Delivery, targets: int, reason: str = ""
    ) -> None:
        event = NotificationOutcome(
            id=new_id(),
            at=self._now(),
            account="",
            key=notification.key,
            title=notification.title,
            delivery=delivery,
            rule=notification.rule,
            targets=targets,
            reason=reason,
        )
        await self._bus.publish([event])
