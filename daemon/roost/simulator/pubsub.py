"""A Cloud Pub/Sub pull subscription, as the REST API shows it (PROTOCOLS.md §3.7).

`Subscription` keeps the messages of one subscription: `pull` is a long poll that answers
as soon as messages are available (or with nothing when its wait runs out), every delivery
carries a fresh ackId, a message not acknowledged within its ack deadline is delivered
again with `deliveryAttempt` + 1, `modify_ack_deadline` extends a deadline (0 is a nack:
redeliver at once). Acknowledging an unknown or expired ackId is accepted and does nothing,
as Pub/Sub does without exactly-once delivery.

`handle` serves `POST …/subscriptions/<name>:pull | :acknowledge | :modifyAckDeadline` with
Google's error envelope. Faults for tests: `hold`/`release` (deliver a backlog in a chosen
order), `duplicate_deliveries`, `faults` (a pull's), `fail_next_acks`, `odd_entries`
(entries Pub/Sub would not send, e.g. without an ackId, beside every pull's deliveries).
"""

from __future__ import annotations

import base64
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from roost.simulator import http
from roost.simulator.faults import Faults

MAX_ACK_DEADLINE_S = 600


def google_error(status: int, rpc_status: str, message: str) -> http.Response:
    """Google's error envelope (google.rpc.Status), as every Google REST API answers."""
    body = {"error": {"code": status, "message": message, "status": rpc_status}}
    return http.Response(status, body)


def rfc3339(moment: datetime) -> str:
    """`2021-01-01T01:00:00.123Z`: UTC with milliseconds, as Google writes timestamps."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Message:
    message_id: str
    data: bytes
    publish_time: datetime
    attributes: dict[str, str] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "data": base64.b64encode(self.data).decode("ascii"),
            "messageId": self.message_id,
            "publishTime": rfc3339(self.publish_time),
        }
        if self.attributes:
            body["attributes"] = dict(self.attributes)
        return body


@dataclass
class _Pending:
    message: Message
    attempt: int = 0  # deliveries so far


@dataclass
class _Outstanding:
    pending: _Pending
    deadline: float  # anyio.current_time() by which it must be acknowledged


@dataclass
class SubscriptionStats:
    published: int = 0
    deliveries: int = 0
    redeliveries: int = 0
    acked: int = 0
    nacked: int = 0
    pulls: int = 0
    empty_pulls: int = 0


class Subscription:
    """One pull subscription: its backlog, its outstanding deliveries, and their deadlines."""

    def __init__(
        self,
        name: str,
        *,
        ack_deadline_s: float = 10.0,
        max_wait_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = name
        self.ack_deadline_s = ack_deadline_s
        self.max_wait_s = max_wait_s  # the longest a pull waits for messages
        self.clock = clock
        self.stats = SubscriptionStats()
        self.duplicate_deliveries = False  # deliver every message twice (at-least-once)
        self._available: deque[_Pending] = deque()
        self._held: list[_Pending] | None = None
        self._outstanding: dict[str, _Outstanding] = {}
        self._ack_failures = 0
        # Sent as they are in every pull that delivers messages, before its deliveries.
        self.odd_entries: list[Any] = []
        self.faults = Faults(["read"])  # "read": a `:pull`
        self._ids = itertools.count(1)
        self._wake: anyio.Event | None = None

    # -- publishing and faults -----------------------------------------------------------

    def publish(self, data: bytes, attributes: dict[str, str] | None = None) -> Message:
        message = Message(
            message_id=str(1_000_000_000_000_000 + next(self._ids)),
            data=data,
            publish_time=self.clock(),
            attributes=dict(attributes or {}),
        )
        self.stats.published += 1
        copies = 2 if self.duplicate_deliveries else 1
        for _ in range(copies):
            pending = _Pending(message)
            if self._held is not None:
                self._held.append(pending)
            else:
                self._available.append(pending)
        self._notify()
        return message

    def hold(self) -> None:
        """Keep new messages back until `release` (to stage out-of-order delivery)."""
        if self._held is None:
            self._held = []

    def release(self, *, reverse: bool = False) -> int:
        """Make the held messages available, in publish order or reversed; how many."""
        held, self._held = self._held or [], None
        self._available.extend(reversed(held) if reverse else held)
        self._notify()
        return len(held)

    def fail_next_acks(self, n: int) -> None:
        """Answer the next n `:acknowledge` calls with 503 (the messages stay outstanding)."""
        self._ack_failures += n

    @property
    def backlog(self) -> int:
        """Messages not yet acknowledged (available, held or outstanding)."""
        return len(self._available) + len(self._held or ()) + len(self._outstanding)

    # -- the API -------------------------------------------------------------------------

    async def pull(self, max_messages: int, wait_s: float | None = None) -> list[dict[str, Any]]:
        """Deliver up to max_messages, waiting up to wait_s (default max_wait_s) for any."""
        self.stats.pulls += 1
        with anyio.move_on_after(self.max_wait_s if wait_s is None else wait_s):
            while True:
                self._expire()
                if self._available:
                    break
                await self._sleep_until_news()
        delivered = [self._deliver(self._available.popleft()) for _ in self._take(max_messages)]
        if not delivered:
            self.stats.empty_pulls += 1
            return []
        return [*self.odd_entries, *delivered]

    def acknowledge(self, ack_ids: list[str]) -> bool:
        """Forget these deliveries; False if the call is to fail (an injected fault)."""
        if self._ack_failures:
            self._ack_failures -= 1
            return False
        for ack_id in ack_ids:
            if self._outstanding.pop(ack_id, None) is not None:
                self.stats.acked += 1
        return True

    def modify_ack_deadline(self, ack_ids: list[str], seconds: float) -> None:
        now = anyio.current_time()
        for ack_id in ack_ids:
            outstanding = self._outstanding.get(ack_id)
            if outstanding is None:
                continue
            if seconds == 0:
                del self._outstanding[ack_id]
                self._available.append(outstanding.pending)
                self.stats.nacked += 1
            else:
                outstanding.deadline = now + seconds
        self._notify()

    # -- internals -----------------------------------------------------------------------

    def _take(self, max_messages: int) -> range:
        return range(min(max_messages, len(self._available)))

    def _deliver(self, pending: _Pending) -> dict[str, Any]:
        pending.attempt += 1
        self.stats.deliveries += 1
        if pending.attempt > 1:
            self.stats.redeliveries += 1
        ack_id = f"{self.name.rsplit('/', 1)[-1]}-ack-{next(self._ids)}"
        deadline = anyio.current_time() + self.ack_deadline_s
        self._outstanding[ack_id] = _Outstanding(pending, deadline)
        return {
            "ackId": ack_id,
            "message": pending.message.wire(),
            "deliveryAttempt": pending.attempt,
        }

    def _expire(self) -> None:
        """Deliveries past their deadline become available again."""
        now = anyio.current_time()
        for ack_id, outstanding in list(self._outstanding.items()):
            if outstanding.deadline <= now:
                del self._outstanding[ack_id]
                self._available.append(outstanding.pending)

    async def _sleep_until_news(self) -> None:
        """Wait for a publish, a nack or the next ack deadline, whichever comes first."""
        deadlines = [o.deadline for o in self._outstanding.values()]
        timeout = max(0.0, min(deadlines) - anyio.current_time()) if deadlines else None
        if self._wake is None:
            self._wake = anyio.Event()
        wake = self._wake
        with anyio.move_on_after(timeout if timeout is not None else float("inf")):
            await wake.wait()

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = None


# -- HTTP ---------------------------------------------------------------------------------


async def handle(subscriptions: dict[str, Subscription], request: http.Request) -> http.Answer:
    """`POST /projects/<p>/subscriptions/<s>:<verb>` (the path below the API's /v1)."""
    name, _, verb = request.path.lstrip("/").partition(":")
    subscription = subscriptions.get(name)
    if request.method != "POST":
        return google_error(405, "INVALID_ARGUMENT", "Only POST is supported.")
    if subscription is None:
        return google_error(404, "NOT_FOUND", f"Resource not found (resource={name}).")
    try:
        body = request.json() if request.body else {}
    except ValueError:
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    if not isinstance(body, dict):
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    match verb:
        case "pull":
            return await _pull(subscription, body)
        case "acknowledge":
            return _acknowledge(subscription, body)
        case "modifyAckDeadline":
            return _modify(subscription, body)
    return google_error(404, "NOT_FOUND", f"Method {verb!r} not found.")


_FAILURES = {429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def _envelope(status: int, message: str) -> object:
    return google_error(status, _FAILURES.get(status, "UNKNOWN"), message).body


async def _pull(subscription: Subscription, body: dict[str, Any]) -> http.Answer:
    fault = subscription.faults.take("read")
    if fault is not None:
        return fault.answer(_envelope)
    max_messages = body.get("maxMessages")
    if isinstance(max_messages, bool) or not isinstance(max_messages, int) or max_messages <= 0:
        return google_error(400, "INVALID_ARGUMENT", "max_messages must be greater than 0.")
    wait_s = 0.0 if body.get("returnImmediately") is True else None
    received = await subscription.pull(max_messages, wait_s)
    return http.Response(200, {"receivedMessages": received} if received else {})


def _ack_ids(body: dict[str, Any]) -> list[str] | None:
    ids = body.get("ackIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return None
    return ids


def _acknowledge(subscription: Subscription, body: dict[str, Any]) -> http.Response:
    ack_ids = _ack_ids(body)
    if ack_ids is None:
        return google_error(400, "INVALID_ARGUMENT", "No ack ids specified.")
    if not subscription.acknowledge(ack_ids):
        return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
    return http.Response(200, {})


def _modify(subscription: Subscription, body: dict[str, Any]) -> http.Response:
    ack_ids = _ack_ids(body)
    seconds = body.get("ackDeadlineSeconds")
    if ack_ids is None:
        return google_error(400, "INVALID_ARGUMENT", "No ack ids specified.")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        return google_error(400, "INVALID_ARGUMENT", "ack_deadline_seconds is required.")
    if not 0 <= seconds <= MAX_ACK_DEADLINE_S:
        return google_error(
            400, "INVALID_ARGUMENT", f"Invalid ack deadline given: {seconds} (0 to 600 allowed)."
        )
    subscription.modify_ack_deadline(ack_ids, seconds)
    return http.Response(200, {})
