"""Pub/Sub deliveries and the SDM event payloads inside them, parsed (PROTOCOLS.md §3.5, §3.7).

A pull answer holds `receivedMessages`, each an `ackId` and a `message` whose `data` is the
base64 of a JSON SDM event. An SDM event carries a `resourceUpdate` (trait values and/or
device events) or a `relationUpdate`; `resourceGroup` is also spelled `resourcegroup` in the
wild and is not needed. Parsing is pure and strict about what roost uses, lenient about the
rest: a payload roost cannot use raises `PayloadError` and is counted, never retried forever.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from roost.core import errors
from roost.providers.bounds import PayloadTooLarge, parse_json
from roost.providers.readers import parse_time

EVENT_PREFIX = "sdm.devices.events."


class PayloadError(errors.PayloadError):
    """A delivery or an SDM payload roost cannot use."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One Pub/Sub delivery: what to acknowledge, and the raw message."""

    ack_id: str
    message_id: str
    data: bytes
    publish_time: datetime | None
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class DeviceEventItem:
    """One entry of `resourceUpdate.events`, e.g. `CameraMotion.Motion`."""

    kind: str  # without the "sdm.devices.events." prefix
    session_id: str
    event_id: str | None = None
    preview_url: str | None = None

    @property
    def key(self) -> str:
        """What makes it the same event in a later message of the thread (for dedupe)."""
        return f"{self.session_id}/{self.kind}"


@dataclass(frozen=True, slots=True)
class Relation:
    type: str  # CREATED | DELETED | UPDATED
    subject: str  # a structure or room name; empty if the developer cannot see it
    object: str  # a device name


@dataclass(frozen=True, slots=True)
class SdmEvent:
    event_id: str
    timestamp: datetime
    resource: str | None = None
    traits: Mapping[str, Mapping[str, Any]] | None = None
    events: tuple[DeviceEventItem, ...] = ()
    relation: Relation | None = None
    thread_id: str | None = None
    thread_state: str | None = None


@dataclass(frozen=True, slots=True)
class Pulled:
    """A `:pull` answer: its usable deliveries, and why each of the others is not."""

    deliveries: list[Delivery]
    unusable: list[PayloadError]


def parse_pull(body: Any) -> Pulled:
    """The deliveries of a `:pull` answer; `{}` means none. Each is read apart: one roost
    cannot use (no ackId) is set aside, and never costs the others."""
    if not isinstance(body, Mapping):
        raise PayloadError("pull answer is not an object")
    received = body.get("receivedMessages", [])
    if not isinstance(received, list):
        raise PayloadError("receivedMessages is not a list")
    pulled = Pulled([], [])
    for item in received:
        try:
            pulled.deliveries.append(_delivery(item))
        except PayloadError as exc:
            pulled.unusable.append(exc)
    return pulled


def _delivery(item: Any) -> Delivery:
    if not isinstance(item, Mapping):
        raise PayloadError("a received message is not an object")
    ack_id = item.get("ackId")
    if not isinstance(ack_id, str) or not ack_id:
        # It cannot be acknowledged: Pub/Sub sends it again after its ack deadline.
        raise PayloadError(f"a received message without a usable ackId ({type(ack_id).__name__})")
    message = item.get("message")
    if not isinstance(message, Mapping):
        message = {}  # nothing to apply: parse_event reports it, and it is acknowledged
    try:
        data = base64.b64decode(str(message.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        data = b""  # undecodable: parse_event reports it, and the delivery is still acked
    attempt = item.get("deliveryAttempt")
    return Delivery(
        ack_id=ack_id,
        message_id=str(message.get("messageId", "")),
        data=data,
        publish_time=parse_time(message.get("publishTime")),
        attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 1,
    )


def parse_event(data: bytes | str | Mapping[str, Any]) -> SdmEvent:
    """An SDM event payload (the decoded `message.data`)."""
    payload = _json(data) if isinstance(data, bytes | str) else data
    if not isinstance(payload, Mapping):
        raise PayloadError("the event is not a JSON object")
    event_id = payload.get("eventId")
    if not isinstance(event_id, str) or not event_id:
        raise PayloadError("the event has no eventId")
    timestamp = parse_time(payload.get("timestamp"))
    if timestamp is None:
        raise PayloadError(f"event {event_id}: no usable timestamp")
    thread_id, thread_state = payload.get("eventThreadId"), payload.get("eventThreadState")
    common: dict[str, Any] = {
        "event_id": event_id,
        "timestamp": timestamp,
        "thread_id": thread_id if isinstance(thread_id, str) else None,
        "thread_state": thread_state if isinstance(thread_state, str) else None,
    }
    if "relationUpdate" in payload:
        return SdmEvent(**common, relation=_relation(payload["relationUpdate"], event_id))
    update = payload.get("resourceUpdate")
    if not isinstance(update, Mapping) or not isinstance(update.get("name"), str):
        raise PayloadError(f"event {event_id}: neither a resourceUpdate nor a relationUpdate")
    traits = update.get("traits")
    if traits is not None and not _is_trait_map(traits):
        raise PayloadError(f"event {event_id}: traits is not an object of objects")
    return SdmEvent(
        **common,
        resource=update["name"],
        traits=traits,
        events=_events(update.get("events"), event_id),
    )


def _json(data: bytes | str) -> Any:
    try:
        return parse_json(data)
    except PayloadTooLarge as exc:
        raise PayloadError(f"the event is refused: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(f"the event is not JSON: {exc}") from None


def _is_trait_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(isinstance(v, Mapping) for v in value.values())


def _relation(value: Any, event_id: str) -> Relation:
    if not isinstance(value, Mapping):
        raise PayloadError(f"event {event_id}: relationUpdate is not an object")
    kind, subject, obj = value.get("type"), value.get("subject", ""), value.get("object")
    if kind not in ("CREATED", "DELETED", "UPDATED") or not isinstance(obj, str) or not obj:
        raise PayloadError(f"event {event_id}: unusable relationUpdate {dict(value)!r}")
    return Relation(kind, subject if isinstance(subject, str) else "", obj)


def _events(value: Any, event_id: str) -> tuple[DeviceEventItem, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise PayloadError(f"event {event_id}: events is not an object")
    items = []
    for name, body in value.items():
        if not isinstance(body, Mapping) or not isinstance(body.get("eventSessionId"), str):
            raise PayloadError(f"event {event_id}: {name} has no eventSessionId")
        inner, preview = body.get("eventId"), body.get("previewUrl")
        items.append(
            DeviceEventItem(
                kind=str(name).removeprefix(EVENT_PREFIX),
                session_id=body["eventSessionId"],
                event_id=inner if isinstance(inner, str) else None,
                preview_url=preview if isinstance(preview, str) else None,
            )
        )
    return tuple(items)
