"""Netatmo webhooks: the signature, and a small receiver that wakes the poll.

Netatmo POSTs a JSON body to the registered URL with `X-Netatmo-secret`, the lowercase hex
HMAC-SHA256 of the raw body keyed with the app's client secret (PROTOCOLS.md §4.5). A
webhook only says "something happened": the receiver checks the signature, refuses a bad
one with 403, and wakes the poll, which reads `homestatus` and `getevents` (so each event
is still reported once, by the timeline, whether a webhook came or not).

The receiver is plain HTTP/1.1 on the address the user chooses, one request per
connection, bodies up to 64 KiB; TLS belongs to the reverse proxy in front of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import h11
import structlog

from roost.host import listeners

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-netatmo-secret"
MAX_BODY = 65536
READ_TIMEOUT_S = 10.0
LIMITS = listeners.Limits(
    max_connections=64,
    read_timeout_s=READ_TIMEOUT_S,
    write_timeout_s=READ_TIMEOUT_S,
    max_request=MAX_BODY + 16384,
)


def sign(secret: str, body: bytes) -> str:
    """The `X-Netatmo-secret` value for `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(secret, body), signature.lower())


@dataclass
class WebhookStats:
    accepted: int = 0
    rejected: int = 0


class WebhookReceiver:
    """Accepts signed webhooks and calls `on_webhook(payload)` for each good one."""

    def __init__(self, secret: str, on_webhook: Callable[[Mapping[str, Any]], None]) -> None:
        self._secret = secret
        self._on_webhook = on_webhook
        self.stats = WebhookStats()
        self.port = 0

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookReceiver(port={self.port})"

    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen until cancelled; reports the bound port through `task_status`."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        log.info("netatmo.webhook_listening", host=host, port=self.port)
        task_status.started(self.port)
        async with listener:
            await listeners.serve(listener, self._connection, "netatmo webhook", LIMITS)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        """One request (the bounded listener closes the stream and logs client errors)."""
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        try:
            with anyio.fail_after(LIMITS.read_timeout_s):
                request, body = await _read(connection, stream)
            status = self._handle(request, body)
        except (TimeoutError, h11.ProtocolError, _TooLarge) as exc:
            listeners.ERRORS.note("netatmo.webhook_bad_request", error=type(exc).__name__)
            status = 400
        with anyio.fail_after(LIMITS.write_timeout_s):
            await _respond(connection, stream, status)

    def _handle(self, request: h11.Request, body: bytes) -> int:
        if request.method != b"POST":
            return 405
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
        if not verify(self._secret, body, headers.get(SIGNATURE_HEADER)):
            self.stats.rejected += 1
            listeners.ERRORS.note("netatmo.webhook_rejected", reason="bad or missing signature")
            return 403
        try:
            payload = json.loads(body)
        except ValueError:
            return 400
        if not isinstance(payload, dict):
            return 400
        self.stats.accepted += 1
        log.info("netatmo.webhook", push_type=str(payload.get("push_type", ""))[:60])
        self._on_webhook(payload)
        return 200


class _TooLarge(Exception):
    pass


async def _read(
    connection: h11.Connection, stream: anyio.abc.SocketStream
) -> tuple[h11.Request, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive(MAX_BODY))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > MAX_BODY:
                raise _TooLarge
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            return request, bytes(body)
        else:
            raise h11.RemoteProtocolError("unexpected end of request")


async def _respond(connection: h11.Connection, stream: anyio.abc.SocketStream, status: int) -> None:
    payload = json.dumps({"status": "ok" if status == 200 else "refused"}).encode()
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(payload))),
        ("connection", "close"),
    ]
    try:
        for event in (
            h11.Response(status_code=status, headers=headers),
            h11.Data(data=payload),
            h11.EndOfMessage(),
        ):
            data = connection.send(event)
            if data:
                await stream.send(data)
    except (h11.ProtocolError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        pass
