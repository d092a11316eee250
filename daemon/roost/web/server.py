"""Serving the web page from inside the daemon: uvicorn on the daemon's own event loop,
bounded like the other listeners.

uvicorn's `Server` is used with three changes: it never touches signal handlers (the
daemon owns SIGTERM/SIGHUP), it ticks once a second instead of ten times (idle CPU), and
its h11 protocol is bounded: at most `max_connections` open connections, counted in the
one descriptor budget of all listeners (`roost.host.listeners`; the next is closed at once),
and a connection that has not sent a complete request head within `HEAD_TIMEOUT_S` is
closed (uvicorn alone keeps a silent connection forever).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import TYPE_CHECKING

import anyio
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from roost.config.settings import WebSettings
from roost.host.listeners import shared_budget
from roost.service.observe import Observer
from roost.web.access import ensure_token
from roost.web.app import MAX_HEAD, create_app

if TYPE_CHECKING:
    from roost.service.runtime import Runtime

log = structlog.get_logger(__name__)

HEAD_TIMEOUT_S = 5.0
KEEP_ALIVE_S = 5
SHUTDOWN_S = 2.0


class BoundedH11(H11Protocol):
    max_connections = 32
    _counted = False  # holds a descriptor of the listeners' shared budget

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        budget = shared_budget()
        if len(self.connections) > self.max_connections or budget.used >= budget.limit:
            transport.close()
            return
        budget.used += 1
        self._counted = True
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            shared_budget().used -= 1
            self._counted = False
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        cycle = self.cycle
        self.loop.call_later(HEAD_TIMEOUT_S, self._head_overdue, cycle)

    def _head_overdue(self, cycle_then: object) -> None:
        """No new request began since the timer was armed: the client is too slow."""
        idle = self.cycle is None or self.cycle.response_complete
        if self.cycle is cycle_then and idle and not self.transport.is_closing():
            self.transport.close()


class EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the daemon handles the signals

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000  # every tick refreshes the Date header
            await asyncio.sleep(1.0)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def serve_web(runtime: Runtime, observer: Observer, settings: WebSettings) -> None:
    """Serve the page until cancelled. A port that cannot be bound is logged and the page
    stays off: the daemon (and its alarms) keep running."""
    address = settings.address()
    assert address is not None
    host, port = address
    token = ensure_token(runtime.settings.daemon.state_dir)
    try:
        sock = bind(host, port)
    except OSError as exc:
        log.error("web page not started: cannot listen", listen=settings.listen, error=str(exc))
        return
    app = create_app(runtime, observer, settings, token)
    protocol = type("Bounded", (BoundedH11,), {"max_connections": settings.max_connections})
    config = uvicorn.Config(
        app,
        http=protocol,
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=int(SHUTDOWN_S),
        h11_max_incomplete_event_size=MAX_HEAD,
    )
    server = EmbeddedServer(config)
    log.info("web page ready", url=f"http://{settings.listen}/", actions="roost web-url")
    try:
        await server.serve(sockets=[sock])
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_S + 1):
            app.web.stop()  # live streams end, so their connections can close
            if server.started and not server.should_exit:
                server.should_exit = True
                await server.shutdown(sockets=[sock])
        sock.close()
