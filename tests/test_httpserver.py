"""The one HTTP server of roost, over real loopback sockets: its answers, its limits (head,
body, slow clients, failing handlers), one request per connection or keep-alive, streams."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from roost.host import httpserver, listeners

pytestmark = pytest.mark.anyio

LIMITS = listeners.Limits(
    max_connections=4, read_timeout_s=0.5, write_timeout_s=0.5, max_request=1024, max_body=256
)


async def echo(request: httpserver.Request) -> httpserver.Answer:
    if request.path == "/boom":
        raise RuntimeError("a bug in the handler")
    if request.path == "/hangup":
        return httpserver.Hangup()
    if request.path == "/stream":

        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"{n}\n".encode()

        return httpserver.StreamingResponse(200, chunks())
    return httpserver.Response(
        200, {"method": request.method, "query": request.query, "body": request.body.decode()}
    )


async def raw(port: int, data: bytes) -> bytes:
    """Send `data`, read until the server closes."""
    with anyio.fail_after(5):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(data)
            answer = b""
            try:
                while True:
                    answer += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return answer


async def test_a_request_gets_its_answer_and_the_connection_closes() -> None:
    async with httpserver.running(echo, "test", LIMITS) as server:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{server.url}/x?a=1", content=b"hi")
        assert response.json() == {"method": "POST", "query": {"a": "1"}, "body": "hi"}
        assert response.headers["connection"] == "close"
        answer = await raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n")
        assert answer.count(b"HTTP/1.1 200") == 1  # one request per connection


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    async with httpserver.running(echo, "test", LIMITS, keep_alive=True) as server:
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                assert (await client.get(f"{server.url}/")).status_code == 200
        assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"\x00\xff garbage\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n" + b"b" * 300, b"413"),
        (b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", b"500"),
    ],
    ids=["garbage", "head too large", "body too large", "handler fails"],
)
async def test_a_bad_request_gets_its_status_and_the_server_goes_on(
    request_bytes: bytes, status: bytes
) -> None:
    async with httpserver.running(echo, "test", LIMITS) as server:
        answer = await raw(server.port, request_bytes)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]
        assert (await raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).startswith(
            b"HTTP/1.1 200"
        )


async def test_a_slow_client_gets_408_at_the_read_deadline() -> None:
    async with httpserver.running(echo, "test", LIMITS) as server:
        started = anyio.current_time()
        answer = await raw(server.port, b"GET / HTTP/1.1\r\nHost")  # and then nothing
        assert answer.startswith(b"HTTP/1.1 408")
        assert LIMITS.read_timeout_s <= anyio.current_time() - started < 4


async def test_connections_beyond_the_limit_are_closed_and_the_server_recovers() -> None:
    async with httpserver.running(echo, "test", LIMITS) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
        await anyio.sleep(0.2)
        for s in idle:
            s.close()
        with anyio.fail_after(5):
            while True:
                answer = await raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                if answer.startswith(b"HTTP/1.1 200"):
                    break
                await anyio.sleep(0.05)


async def test_hangup_and_streams() -> None:
    async with httpserver.running(echo, "test", LIMITS, keep_alive=True) as server:
        assert await raw(server.port, b"GET /hangup HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{server.url}/stream")
        assert response.text == "0\n1\n2\n"
        assert server.open_streams == 0


async def test_sent_is_called_once_the_response_is_out() -> None:
    calls: list[str] = []

    async def handler(request: httpserver.Request) -> httpserver.Answer:
        return httpserver.Response(200, b"ok", sent=lambda: calls.append("sent"))

    async with httpserver.running(handler, "test", LIMITS) as server:
        assert (await raw(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).endswith(b"ok")
    assert calls == ["sent"]


async def test_a_stream_ends_as_soon_as_its_client_hangs_up() -> None:
    """Not at its next chunk: a live view that sends only every few seconds must give its
    slot back when the browser leaves (the web page's viewer limit counts on `done`)."""
    ended = anyio.Event()
    done: list[str] = []

    async def silent() -> AsyncIterator[bytes]:
        try:
            yield b"first\n"
            await anyio.sleep_forever()
            yield b"never\n"
        finally:
            ended.set()

    async def handler(request: httpserver.Request) -> httpserver.Answer:
        return httpserver.StreamingResponse(200, silent(), done=lambda: done.append("done"))

    async with httpserver.running(handler, "test", LIMITS) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with anyio.fail_after(5):
                head = b""
                while b"first" not in head:
                    head += await stream.receive()
            assert server.open_streams == 1
        with anyio.fail_after(2):
            await ended.wait()
        while server.open_streams:
            await anyio.sleep(0.01)
    assert done == ["done"]


async def test_a_servers_headers_go_on_every_answer_its_errors_too() -> None:
    headers = (("x-frame-options", "DENY"),)
    async with httpserver.running(echo, "test", LIMITS, headers=headers) as server:
        async with httpx.AsyncClient() as client:
            ok = await client.get(f"{server.url}/")
            streamed = await client.get(f"{server.url}/stream")
            too_big = await client.post(f"{server.url}/", content=b"x" * 1000)
        assert too_big.status_code == 413
        for response in (ok, streamed, too_big):
            assert response.headers["x-frame-options"] == "DENY"
