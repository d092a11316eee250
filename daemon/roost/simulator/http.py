"""The simulators' side of roost's one HTTP server (`roost.host.httpserver`): keep-alive as a
cloud's front ends do, streaming responses (chunked, each chunk flushed at once) and
hang-ups for fault injection. The simulators are the far side of the network in tests,
not a listener the daemon must protect, so their limits are wide and their descriptors
are not counted in the daemon's budget.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc

from roost.host import httpserver, listeners
from roost.host.httpserver import Answer, Handler, Hangup, Request, Response, StreamingResponse

__all__ = [
    "Answer",
    "Handler",
    "Hangup",
    "Request",
    "Response",
    "Server",
    "StreamingResponse",
    "serve",
]

LIMITS = listeners.Limits(
    max_connections=100_000,
    read_timeout_s=math.inf,
    write_timeout_s=math.inf,
    max_request=1 << 20,
    max_body=64 << 20,
)


class Server(httpserver.Server):
    """A running simulator: where it listens, its live streams, and background tasks that
    live as long as it does."""

    def __init__(self, handler: Handler, task_group: anyio.abc.TaskGroup, host: str, port: int):
        super().__init__(handler, "simulator", LIMITS, keep_alive=True, host=host, port=port)
        self._task_group = task_group

    def start_soon(
        self, func: Callable[[], Coroutine[Any, Any, object]], name: str | None = None
    ) -> None:
        """Run a background task that lives as long as the server."""
        self._task_group.start_soon(func, name=name)


@asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Server]:
    """Listen on host:port (port 0 picks a free one) until the context is left."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound_port = listener.extra(anyio.abc.SocketAttribute.local_port)
    failure: Exception | None = None
    async with listener, anyio.create_task_group() as task_group:
        server = Server(handler, task_group, host, bound_port)
        task_group.start_soon(server.serve, listener, listeners.FdBudget(limit=1 << 30))
        try:
            yield server
        except Exception as error:
            # Re-raised below the task group so callers see it unwrapped, not in a group.
            failure = error
        finally:
            task_group.cancel_scope.cancel()
    if failure is not None:
        raise failure
