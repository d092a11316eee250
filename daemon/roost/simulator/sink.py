"""A local HTTP endpoint that receives notifications the way a phone's push service would.

apprise's `json://127.0.0.1:PORT/path` target POSTs `{"title", "message", "type", …}`
here. The demo prints what arrives; tests wait for it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from roost.simulator.http import Request, Response, serve


@dataclass
class NotificationSink:
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    on_receive: Callable[[dict[str, Any]], None] | None = None
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    @property
    def url(self) -> str:
        """The apprise URL of this sink."""
        return f"json://127.0.0.1:{self.port}/notify"

    async def handle(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(405, {"error": "POST only"})
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return Response(400, {"error": "not JSON"})
        payload["_headers"] = dict(request.headers)
        self.received.append(payload)
        if self.on_receive is not None:
            self.on_receive(payload)
        self._arrived.set()
        self._arrived = anyio.Event()
        return Response(200, {"ok": True})

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        """Wait until `count` notifications have arrived in total."""
        while len(self.received) < count:
            await self._arrived.wait()
        return self.received


@asynccontextmanager
async def serve_sink() -> AsyncIterator[NotificationSink]:
    sink = NotificationSink()
    async with serve(sink.handle) as server:
        sink.port = server.port
        yield sink
