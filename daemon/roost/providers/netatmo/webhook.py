"""Netatmo webhooks: the signature, and a small receiver that wakes the poll.

Netatmo POSTs a JSON body to the registered URL with `X-Netatmo-secret`, the lowercase hex
HMAC-SHA256 of the raw body keyed with the app's client secret (PROTOCOLS.md §4.5). A
webhook only says "something happened": the receiver checks the signature, refuses a bad
one with 403, and wakes the poll, which reads `homestatus` and `getevents` (so each event
is still reported once, by the timeline, whether a webhook came or not).

The receiver is plain HTTP/1.1 (`httpserver`) on the address the user chooses, one
request per connection, bodies up to 64 KiB; TLS belongs to the reverse proxy in front.
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
import structlog

from roost.host import listeners
from roost.host.httpserver import Request, Response, Server

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-netatmo-secret"
MAX_BODY = 65536
READ_TIMEOUT_S = 10.0
LIMITS = listeners.Limits(
    max_connections=64,
    read_timeout_s=READ_TIMEOUT_S,
    write_timeout_s=READ_TIMEOUT_S,
    max_request=16384,  # the head
    max_body=MAX_BODY,
)


def sign(secret: str, body: bytes) -> str:
    """The `X-Netatmo-secret` value for `body`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    if signature is None:
        return False
    given = signature.lower().encode()  # as bytes: a str beyond ASCII makes compare_digest raise
    return hmac.compare_digest(sign(secret, body).encode(), given)


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
            await Server(self._answer, "netatmo webhook", LIMITS).serve(listener)

    async def _answer(self, request: Request) -> Response:
        """One request per connection (the server answers malformed, oversize or slow
        requests itself)."""
        status = self._handle(request)
        return Response(status, {"status": "ok" if status == 200 else "refused"})

    def _handle(self, request: Request) -> int:
        if request.method != "POST":
            return 405
        if not verify(self._secret, request.body, request.headers.get(SIGNATURE_HEADER)):
            self.stats.rejected += 1
            listeners.ERRORS.note("netatmo.webhook_rejected", reason="bad or missing signature")
            return 403
        try:
            payload = json.loads(request.body)
        except ValueError:
            return 400
        if not isinstance(payload, dict):
            return 400
        self.stats.accepted += 1
        log.info("netatmo.webhook", push_type=str(payload.get("push_type", ""))[:60])
        self._on_webhook(payload)
        return 200
