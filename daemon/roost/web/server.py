"""Serving the web page from inside the daemon, on roost's own HTTP server
(`roost.host.httpserver`, the one the webhook receiver, the metrics endpoint and the OAuth
callback use), bounded like the other listeners.

The limits: at most `max_connections` open connections, counted in the one descriptor
budget of all listeners (the next is closed at once); a request head and body complete
within `HEAD_TIMEOUT_S` (a silent or slowly dripping client is answered 408 and cut off);
a head of at most `MAX_HEAD` bytes (431) and a form of at most `MAX_FORM` (413); every
send within `WRITE_TIMEOUT_S` (a live viewer that stops reading is cut off). One request
per connection: the browser opens a new one per page, so none is held idle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import structlog
from anyio.abc import SocketAttribute

from roost.config.settings import WebSettings
from roost.host import httpserver
from roost.host.listeners import Limits
from roost.service.observe import Observer
from roost.web.access import ensure_token
from roost.web.app import MAX_FORM, MAX_HEAD, SECURITY_HEADERS, Page, create_app

if TYPE_CHECKING:
    from roost.service.runtime import Runtime

log = structlog.get_logger(__name__)

HEAD_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 10.0
SHUTDOWN_S = 2.0  # how long live streams get to end at a stop
NAME = "web page"


def limits(settings: WebSettings) -> Limits:
    return Limits(
        max_connections=settings.max_connections,
        read_timeout_s=HEAD_TIMEOUT_S,
        write_timeout_s=WRITE_TIMEOUT_S,
        max_request=MAX_HEAD,
        max_body=MAX_FORM,
    )


@asynccontextmanager
async def listening(
    page: Page, settings: WebSettings, host: str, port: int
) -> AsyncIterator[httpserver.Server]:
    """The page served on host:port (0: a free port) until the context is left. Leaving
    ends the live streams first (each sends its last chunk), so a browser sees a stream
    that ended rather than a connection cut mid-body, then closes what is left."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(SocketAttribute.local_port)
    server = httpserver.Server(
        page, NAME, limits(settings), host=host, port=bound, headers=SECURITY_HEADERS
    )
    stop = anyio.CancelScope(shield=True)  # the page stops on its own terms, below

    async def run() -> None:
        with stop:
            await server.serve(listener)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            yield server
        finally:
            page.web.stop()
            with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_S):
                await server.streams_ended()
            stop.cancel()


async def serve_web(runtime: Runtime, observer: Observer, settings: WebSettings) -> None:
    """Serve the page until cancelled. A port that cannot be bound is logged and the page
    stays off: the daemon (and its alarms) keep running."""
    address = settings.address()
    assert address is not None
    host, port = address
    page = create_app(runtime, observer, settings, ensure_token(runtime.settings.daemon.state_dir))
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(listening(page, settings, host, port))
        except OSError as exc:
            log.error("web page not started: cannot listen", listen=settings.listen, error=str(exc))
            return
        log.info("web page ready", url=f"http://{settings.listen}/", actions="roost web-url")
        await anyio.sleep_forever()
