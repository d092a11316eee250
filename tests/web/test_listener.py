"""The web listener keeps the limits of the other listeners, against `roost run` as a
real subprocess: a silent client is cut off, connections past the cap are closed at once,
an oversized request head is refused, live viewers are capped; through all of it the
daemon answers on its control socket and the page serves again once the clients go."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import anyio
import httpx
import pytest

from roost.web.server import HEAD_TIMEOUT_S
from tests.web.bed import running

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WEB = "max_connections = 8\nmax_live_viewers = 2\n"


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.settimeout(0.2)
    return sock


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


async def _wait_closed(sock: socket.socket, timeout_s: float) -> float:
    started = time.monotonic()
    with anyio.fail_after(timeout_s):
        while not await anyio.to_thread.run_sync(_closed, sock):
            pass
    return time.monotonic() - started


async def test_limits_hold_and_the_daemon_keeps_answering(tmp_path: Path) -> None:
    async with running(tmp_path, {}, web=WEB) as bed:
        silent = _connect(bed.base)
        took = await _wait_closed(silent, HEAD_TIMEOUT_S + 5)
        assert took >= HEAD_TIMEOUT_S - 1  # cut off for its silence, not at once
        silent.close()

        held = [_connect(bed.base) for _ in range(8)]
        await anyio.sleep(0.3)
        extra = [_connect(bed.base) for _ in range(4)]
        for sock in extra:
            assert await _wait_closed(sock, 3) < 3  # past the cap: closed at once
        code, out, _ = await bed.roost("status", "--json")
        assert code == 0, "the control socket must answer while the page is saturated"
        assert '"connected"' in out
        for sock in held + extra:
            sock.close()
        await anyio.sleep(0.3)

        async with httpx.AsyncClient(base_url=bed.base) as client:
            big = await client.get("/", headers={"x-filler": "a" * 20_000})
            assert big.status_code == 431
            assert (await client.get("/")).status_code == 200

            async with (
                client.stream("GET", "/live/stream") as first,
                client.stream("GET", "/live/stream") as second,
            ):
                assert first.status_code == second.status_code == 200
                third = await client.get("/live/stream")
                assert third.status_code == 503
            with anyio.fail_after(5):  # a viewer's slot is free again once it left
                while True:
                    async with client.stream("GET", "/live/stream") as again:
                        if again.status_code == 200:
                            break
                    await anyio.sleep(0.1)


async def test_a_live_viewer_does_not_hold_up_the_stop(tmp_path: Path) -> None:
    async with running(tmp_path, {}) as bed, httpx.AsyncClient(base_url=bed.base) as client:
        async with client.stream("GET", "/live/stream") as live:
            assert live.status_code == 200
            bed.process.terminate()
            with anyio.fail_after(15):
                async for _ in live.aiter_bytes():  # to its last chunk, not cut mid-body
                    pass
                assert await bed.process.wait() == 0
        log = bed.log.read_text()
        assert "handler failed" not in log
        assert "connection failed" not in log
