"""The bounded listener over real loopback sockets: connection limit, fd budget, deadlines,
size cap, isolation of a failing connection, an accept loop that outlives EMFILE, and
rate-limited error lines; and the OAuth callback server under attack."""

from __future__ import annotations

import errno
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream

from roost.cli import auth
from roost.host import listeners

pytestmark = pytest.mark.anyio

FAST = listeners.Limits(max_connections=2, read_timeout_s=0.5, write_timeout_s=0.5, max_request=64)


async def echo_line(stream: SocketStream) -> None:
    line = await listeners.read_until(stream, b"\n", FAST)
    if line.startswith(b"boom"):
        raise RuntimeError("a bug in the handler")
    await listeners.send(stream, line, FAST)


@asynccontextmanager
async def serving(
    limits: listeners.Limits = FAST, budget: listeners.FdBudget | None = None, wrap: Any = None
) -> AsyncIterator[int]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    served = wrap(listener.listeners[0]) if wrap else listener
    budget = budget or listeners.FdBudget(limit=1000)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listeners.serve, served, echo_line, "test", limits, budget)
        yield port
        tg.cancel_scope.cancel()


async def ask(port: int, line: bytes) -> bytes:
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(line)
            data = b""
            try:
                while True:
                    data += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return data


async def test_connections_beyond_the_limit_are_closed_at_once() -> None:
    async with serving() as port:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        await anyio.sleep(0.1)
        assert await ask(port, b"hello\n") == b""  # refused: both slots are taken
        for s in idle:
            s.close()
        await anyio.sleep(0.1)
        assert await ask(port, b"hello\n") == b"hello\n"


async def test_the_fd_budget_is_shared_and_binds_before_the_limit() -> None:
    budget = listeners.FdBudget(limit=1)
    async with serving(budget=budget) as port:
        idle = socket.create_connection(("127.0.0.1", port))
        await anyio.sleep(0.1)
        assert budget.used == 1
        assert await ask(port, b"hello\n") == b""
        idle.close()
        await anyio.sleep(0.1)
        assert budget.used == 0


async def test_a_silent_or_slow_client_is_cut_off_at_the_read_deadline() -> None:
    async with serving() as port:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"he")
        slow.settimeout(3)
        closed = await anyio.to_thread.run_sync(slow.recv, 100)
        assert closed == b""  # closed by the server after 0.5 s
        slow.close()


async def test_an_oversize_line_and_a_failing_handler_end_only_their_connection() -> None:
    async with serving() as port:
        assert await ask(port, b"x" * 1000) == b""
        assert await ask(port, b"boom\n") == b""
        assert await ask(port, b"still here\n") == b"still here\n"


class FlakyListener(listeners.Listener[Any]):  # type: ignore[misc]
    """A real listener whose first accepts fail as when the process is out of descriptors."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner, self.failures = inner, failures

    async def accept(self) -> Any:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return await self.inner.accept()

    async def serve(self, handler: Any, task_group: Any = None) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def extra_attributes(self) -> Any:
        return {}


async def test_the_accept_loop_outlives_emfile() -> None:
    async with serving(wrap=lambda inner: FlakyListener(inner, failures=5)) as port:
        assert await ask(port, b"after EMFILE\n") == b"after EMFILE\n"


def test_an_error_kind_is_logged_once_a_minute_with_its_count() -> None:
    now = [0.0]
    log = listeners.RateLimitedLog(clock=lambda: now[0])
    written = sum(log.note("bad signature") for _ in range(5000))
    assert written == 1
    now[0] = 61.0
    assert log.note("bad signature") is True
    assert log.total["bad signature"] == 5001
    assert log.note("another kind") is True


async def test_the_oauth_callback_gets_its_code_after_an_attack() -> None:
    limits = auth.CALLBACK_LIMITS
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        got: list[tuple[str | None, str | None]] = []

        async def wait_code() -> None:
            got.append(await auth.receive_code(listener, "S", timeout_s=30))

        tg.start_soon(wait_code)
        await anyio.sleep(0.1)
        for _ in range(20):  # early hang-ups and garbage
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"\x00\xff garbage\r\n\r\n")
            s.close()
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        huge = socket.create_connection(("127.0.0.1", port))
        huge.sendall(b"G" * (limits.max_request + 10))
        for s in [*idle, huge]:
            s.close()
        with anyio.fail_after(15):
            while not got:
                request = b"GET /callback?code=C&state=S HTTP/1.1\r\nHost: x\r\n\r\n"
                answer = await ask(port, request)
                if b"authorized" not in answer:
                    await anyio.sleep(0.2)
                else:
                    break
    assert got == [("C", None)]


async def test_5000_bad_webhook_signatures_make_one_log_line() -> None:
    from structlog.testing import capture_logs

    from roost.providers.netatmo.webhook import WebhookReceiver, sign

    woken: list[object] = []
    receiver = WebhookReceiver("the-client-secret", woken.append)
    listeners.ERRORS._last.pop("netatmo.webhook_rejected", None)  # a fresh minute
    async with anyio.create_task_group() as tg:
        port = await tg.start(receiver.serve, "127.0.0.1", 0)
        body = b'{"push_type": "NACamera-movement"}'
        bad = (
            f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "X-Netatmo-secret: 00\r\n\r\n"
        ).encode() + body
        with capture_logs() as logs:
            for _ in range(5000):
                assert b" 403 " in await ask(port, bad)
        good = bad.replace(b"00\r\n", sign("the-client-secret", body).encode() + b"\r\n")
        assert b" 200 " in await ask(port, good)
        tg.cancel_scope.cancel()
    rejected = [e for e in logs if e["event"] == "netatmo.webhook_rejected"]
    assert len(rejected) == 1
    assert receiver.stats.rejected == 5000
    assert len(woken) == 1
