"""Push notifications: a durable outbox in front of apprise.

A notification is committed to the outbox (SQLite) before anything is sent, then delivered
at least once to every target it is routed to, retried with back-off for hours, and marked
dead after `retry_for_s` (logged, visible in `roost outbox`); an alarm is retried every
`ALARM_RETRY_MAX_S` at most, and never marked dead. Each notification has a stable dedupe
key; HTTP targets receive it as the `X-Roost-Dedupe-Key` header (in ASCII: other
characters as `\\uXXXX`) so a receiver can drop the rare duplicate (a crash between
delivery and recording it).

Routing: a target with no tags receives every notification; a tagged target receives the
notifications that carry one of its tags.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import anyio
import structlog

from roost.core.bus import Bus
from roost.core.clock import Clock, SystemClock
from roost.core.events import Delivery, NotificationOutcome
from roost.core.ids import new_id
from roost.core.redact import redact_text
from roost.host.faults import fault_point
from roost.notify.helper import send_alarm
from roost.notify.priorities import with_priority
from roost.store.interface import StateStore
from roost.store.sqlite import OutboxEntry

log = structlog.get_logger(__name__)

POLL_S = 5.0  # also picks up `roost outbox retry` made from another process
DELIVERY_LIMIT_S = 15.0  # one attempt at every target, even while stopping
# An alarm is never given up, and retried at least this often: when its target is back,
# it goes out within seconds, not after an ordinary push's back-off of minutes.
ALARM_RETRY_MAX_S = 10.0
_KEY_HEADER_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


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
    alarm: bool = False  # sent for a smoke/CO alarm: its delivery fails open
    account: str | None = None  # the account it is about (in a fleet: whose owner writes it)

    @property
    def must_go_out(self) -> bool:
        return self.alarm or self.priority is Priority.URGENT

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "body": self.body,
            "tags": list(self.tags),
            "priority": self.priority.value,
            "rule": self.rule,
            "cause": self.cause,
            "alarm": self.alarm,
            **({"account": self.account} if self.account is not None else {}),
        }

    @classmethod
    def from_entry(cls, entry: OutboxEntry) -> Notification:
        p = entry.payload
        return cls(
            key=entry.key,
            title=str(p["title"]),
            body=str(p.get("body", "")),
            tags=tuple(p.get("tags", ())),
            priority=Priority(p.get("priority", "normal")),
            rule=p.get("rule"),
            cause=p.get("cause"),
            created_at=entry.created_at,
            alarm=bool(p.get("alarm", False)),
            account=p.get("account"),
        )


@dataclass(frozen=True)
class Target:
    url: str
    tags: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        """Stable across restarts, reveals nothing of the URL."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:12]

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower() if "://" in self.url else "?"

    def wants(self, notification: Notification) -> bool:
        return not self.tags or bool(self.tags.intersection(notification.tags))


class NotifyConfigError(ValueError):
    pass


def restrict_schemes(schemes: Sequence[str]) -> None:
    """Allow only these apprise schemes process-wide (apprise's manager is a singleton)."""
    import apprise

    manager: Any = apprise.NotificationManager
    manager().enable_only(*schemes)


def _with_key(target: Target, key: str) -> str:
    if target.scheme not in _KEY_HEADER_SCHEMES:
        return target.url
    separator = "&" if "?" in target.url else "?"
    return f"{target.url}{separator}+X-Roost-Dedupe-Key={quote(_header_value(key), safe='')}"


def _header_value(key: str) -> str:
    """The key as an HTTP header carries it: ASCII (its title may name a room called
    Кухня, sent as `\\u041a\\u0443…`: as stable, and apprise's unquoting leaves it be),
    and short enough for any server (a longer one ends in a digest of the whole key)."""
    text = key.encode("ascii", "backslashreplace").decode("ascii")
    if len(text) <= _HEADER_MAX:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:32]
    return f"{text[: _HEADER_MAX - 40]}...{digest}"


_HEADER_MAX = 256


# apprise's notify type (its values) for each priority: the icon or colour a service shows.
NOTIFY_TYPES = {
    Priority.LOW: "info",
    Priority.NORMAL: "info",
    Priority.HIGH: "warning",
    Priority.URGENT: "failure",
}

Send = Callable[["Target", Notification], Awaitable[bool]]


def request_for(target: Target, notification: Notification) -> dict[str, str]:
    """What apprise is given for one delivery: the URL (with the dedupe key and the
    priority in the service's terms), title, body and notify type."""
    return {
        "url": with_priority(_with_key(target, notification.key), notification.priority.value),
        "title": notification.title,
        "body": notification.body or notification.title,
        "type": NOTIFY_TYPES[notification.priority],
    }


async def _send(target: Target, notification: Notification) -> bool:
    """One delivery through apprise in this process (imported on first use: apprise and
    its plugins cost ~25 MiB and ~0.3 s to load; the daemon uses notifyproc's helper)."""
    import apprise

    request = request_for(target, notification)
    if notification.must_go_out:
        return await send_alarm(apprise, request)
    sender = apprise.Apprise(asset=apprise.AppriseAsset(app_id="roost"))
    if not sender.add(request["url"]):
        return False
    result: Any = await sender.async_notify(
        body=request["body"],
        title=request["title"],
        notify_type=apprise.NotifyType(request["type"]),
    )
    return bool(result)


def validate_targets(targets: Sequence[Target]) -> None:
    import apprise

    for target in targets:
        if not apprise.Apprise().add(target.url):
            raise NotifyConfigError(f"notify target {target.scheme}:// is invalid or not allowed")


class Notifier:
    def __init__(
        self,
        targets: Sequence[Target],
        bus: Bus,
        store: StateStore,
        *,
        clock: Clock | None = None,
        retry_for_s: float = 6 * 3600,
        retry_initial_s: float = 2.0,
        retry_max_s: float = 300.0,
        poll_s: float = POLL_S,
        send: Send | None = None,
    ) -> None:
        """`send` delivers one notification to one target; by default apprise in this
        process (the targets are checked here, at once)."""
        if send is None:
            validate_targets(targets)
        self._send = send or _send
        self._poll_s = poll_s
        self._targets = list(targets)
        self._bus = bus
        self._store = store
        self._clock = clock or SystemClock()
        self._retry_for_s = retry_for_s
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._wake = anyio.Event()
        self._in_flight: set[str] = set()

    async def submit(self, notification: Notification) -> None:
        """Commit to the outbox (durable when this returns), then wake the sender."""
        payload = notification.to_dict()
        # What leaves for a third-party service carries no credential.
        payload["title"] = redact_text(_utf8(notification.title))
        payload["body"] = redact_text(_utf8(notification.body))
        payload["tags"] = [_utf8(tag) for tag in notification.tags]
        key = _utf8(notification.key)  # the key holds the title
        if await self._store.outbox_add(key, payload, notification.created_at):
            fault_point("outbox_committed")
            self._wake.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                now = self._clock.now()
                horizon = now + timedelta(seconds=2 * self._retry_max_s)
                # A delivery that ends while the query runs may be read as still pending
                # (a pooled store reads concurrently): such a key waits for the next round.
                busy = set(self._in_flight)
                for entry in await self._store.outbox_due(now, horizon):
                    if entry.key not in self._in_flight and entry.key not in busy:
                        self._in_flight.add(entry.key)
                        tg.start_soon(self._deliver, entry)
                await self._idle()

    async def _idle(self) -> None:
        wait_s = self._poll_s
        next_due = await self._store.outbox_next_due()
        if next_due is not None:
            wait_s = min(wait_s, (next_due - self._clock.now()).total_seconds())
        if wait_s > 0:
            with anyio.move_on_after(wait_s):
                await self._wake.wait()
        self._wake = anyio.Event()

    async def _deliver(self, entry: OutboxEntry) -> None:
        # Shielded: a stop must not cut a delivery between the send and its record, or
        # the next start would send it again.
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(DELIVERY_LIMIT_S):
                await self._attempt(entry)
        finally:
            self._in_flight.discard(entry.key)

    async def _attempt(self, entry: OutboxEntry) -> None:
        notification = Notification.from_entry(entry)
        routed = [t for t in self._targets if t.wants(notification)]
        delivered = list(entry.delivered_to)
        for target in routed:
            if target.id in delivered:
                continue
            if await self._try(target, notification):
                fault_point("notification_sent")
                delivered.append(target.id)
        missing = [t for t in routed if t.id not in delivered]
        now = self._clock.now()
        attempts = entry.attempts + 1
        if not routed:
            log.warning("notification matches no target", title=notification.title)
        if not missing:
            await self._finish(entry, "delivered", attempts, delivered, now)
            await self._outcome(notification, Delivery.DELIVERED, len(routed))
            return
        if (
            not notification.must_go_out
            and (now - entry.created_at).total_seconds() >= self._retry_for_s
        ):
            await self._finish(entry, "dead", attempts, delivered, now, "gave up")
            log.error("notification given up", title=notification.title, targets=len(missing))
            await self._outcome(notification, Delivery.DEAD, len(missing), "gave up")
            return
        delay = self._backoff(attempts, ALARM_RETRY_MAX_S if notification.must_go_out else None)
        await self._store.outbox_update(
            entry.key,
            state="pending",
            attempts=attempts,
            delivered_to=delivered,
            next_attempt_at=now + timedelta(seconds=delay),
            last_error=f"{len(missing)} target(s) failed",
        )
        await self._outcome(notification, Delivery.RETRYING, len(missing), f"attempt {attempts}")

    async def _finish(
        self,
        entry: OutboxEntry,
        state: str,
        attempts: int,
        delivered: list[str],
        now: datetime,
        error: str = "",
    ) -> None:
        await self._store.outbox_update(
            entry.key,
            state=state,
            attempts=attempts,
            delivered_to=delivered,
            next_attempt_at=now,
            last_error=error,
            finished_at=now,
        )

    def _backoff(self, attempts: int, most_s: float | None = None) -> float:
        most_s = self._retry_max_s if most_s is None else min(most_s, self._retry_max_s)
        cap = min(most_s, self._retry_initial_s * 2 ** min(attempts - 1, 60))
        return random.uniform(cap / 2, cap)

    async def _try(self, target: Target, notification: Notification) -> bool:
        try:
            ok = await self._send(target, notification)
        except Exception:
            log.exception("notification target raised", scheme=target.scheme)
            return False
        if not ok:
            log.warning("notification not delivered", scheme=target.scheme)
        return ok

    async def _outcome(
        self, notification: Notification, delivery: Delivery, targets: int, reason: str = ""
    ) -> None:
        event = NotificationOutcome(
            id=new_id(),
            at=self._clock.now(),
            account="",
            key=notification.key,
            title=notification.title,
            delivery=delivery,
            rule=notification.rule,
            targets=targets,
            reason=reason,
        )
        await self._bus.publish([event])


_SURROGATE = re.compile("[\ud800-\udfff]")


def _utf8(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate (JSON can hold one, "\\ud800", in a
    device's name) becomes U+FFFD instead of failing the outbox write, and the alarm."""
    return _SURROGATE.sub("\ufffd", text)
