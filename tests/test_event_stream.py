"""The SSE connection read by an asyncio Protocol, against a real socket that sends exactly
the bytes a test names: HTTP framing, refusals, bounds, silence, back-pressure and TLS."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import httpx
import pytest
from anyio.streams.tls import TLSListener

from roost.providers.event_stream import (
    MAX_ERROR_BODY,
    EventStream,
    SilentStream,
    open_stream,
)
from roost.providers.sse import EventTooLarge, SseEvent

pytestmark = pytest.mark.anyio

OK_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
TIMEOUTS = httpx.Timeout(2.0)
KEEPALIVE = b"event: keep-alive\ndata: null\n\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Wire:
    """A server that answers every connection with `pieces`, then holds or closes it."""

    def __init__(self, pieces: Sequence[bytes], *, hold: bool = False, gap_s: float = 0.002):
        self.pieces, self.hold, self.gap_s = pieces, hold, gap_s
        self.requests: list[bytes] = []
        self.sent_bytes = 0

    async def handle(self, client: anyio.abc.ByteStream) -> None:
        async with client:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await client.receive()
            self.requests.append(request)
            try:
                for piece in self.pieces:
                    await client.send(piece)
                    self.sent_bytes += len(piece)
                    await anyio.sleep(self.gap_s)
                if self.hold:
                    await anyio.sleep_forever()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass


@asynccontextmanager
async def serving(wire: Wire, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    listener: anyio.abc.Listener[anyio.abc.ByteStream] = tcp
    if tls is not None:
        listener = TLSListener(tcp, tls, standard_compatible=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, wire.handle)
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


@asynccontextmanager
async def stream_of(
    url: str,
    *,
    silence_s: float = 2.0,
    limit: int = 1024,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[EventStream]:
    async with (
        httpx.AsyncClient() as client,
        open_stream(
            client,
            httpx.URL(url + "/stream?x=1"),
            {"Authorization": "Bearer t"},
            timeouts=TIMEOUTS,
            silence_s=silence_s,
            max_event_bytes=limit,
            skip=frozenset({"keep-alive"}),
            ssl_context=ssl_context,
        ) as stream,
    ):
        yield stream


async def events_of(stream: EventStream) -> list[SseEvent]:
    found = []
    while (event := await stream.next()) is not None:
        found.append(event)
    return found


async def test_chunked_events_split_anywhere_keepalives_skipped_and_a_clean_end() -> None:
    body = b'event: put\r\ndata: {"a": 1}\r\n\r\n' + KEEPALIVE + b"data: two\rdata: lines\r\r"
    wire_bytes = OK_HEAD + chunk(body[:7]) + chunk(body[7:]) + b"0\r\n\r\n"
    for split in (1, 2, 3, 5, 11, len(wire_bytes)):  # every framing boundary cut somewhere
        pieces = [wire_bytes[i : i + split] for i in range(0, len(wire_bytes), split)]
        wire = Wire(pieces, gap_s=0)
        async with serving(wire) as url, stream_of(url) as stream:
            assert stream.response.status_code == 200
            assert await events_of(stream) == [
                SseEvent("put", '{"a": 1}'),
                SseEvent("message", "two\nlines"),
            ]
        request = wire.requests[0]
        assert request.startswith(b"GET /stream?x=1 HTTP/1.1\r\n")
        assert b"\r\nAuthorization: Bearer t\r\n" in request
        assert b"\r\nHost: 127.0.0.1:" in request
        assert b"\r\nUser-Agent: roost/" in request


async def test_a_content_length_body_and_a_body_until_close() -> None:
    body = b"data: one\n\n"
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    async with serving(Wire([sized], hold=True)) as url, stream_of(url) as stream:
        assert await events_of(stream) == [SseEvent("message", "one")]
    until_close = b"HTTP/1.0 200 OK\r\n\r\n" + body
    async with serving(Wire([until_close])) as url, stream_of(url) as stream:
        assert await events_of(stream) == [SseEvent("message", "one")]


async def test_a_chunked_body_cut_short_is_a_protocol_error_after_its_events() -> None:
    pieces = [OK_HEAD, chunk(b"data: whole\n\n"), b"40\r\ndata: cut"]
    async with serving(Wire(pieces)) as url, stream_of(url) as stream:
        assert await stream.next() == SseEvent("message", "whole")
        with pytest.raises(httpx.RemoteProtocolError):
            await stream.next()


async def test_a_refusal_comes_back_as_an_httpx_response_with_its_headers_and_body() -> None:
    message = b'{"error": "slow down"}'
    head = b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\nContent-Length: %d\r\n\r\n" % len(message)
    async with serving(Wire([head, message], hold=True)) as url, stream_of(url) as stream:
        response = stream.response
        assert response.status_code == 429
        assert response.headers["retry-after"] == "7"
        assert response.json() == {"error": "slow down"}
    redirect = b"HTTP/1.1 307 Moved\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    async with serving(Wire([redirect], hold=True)) as url, stream_of(url) as stream:
        assert stream.response.is_redirect
        assert stream.response.url.join(stream.response.headers["location"]).path == "/elsewhere"


async def test_an_endless_refusal_body_is_read_only_up_to_its_bound() -> None:
    head = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n"
    pieces = [head] + [chunk(b"x" * 8192)] * (MAX_ERROR_BODY // 8192 + 4)
    async with serving(Wire(pieces, hold=True)) as url, stream_of(url) as stream:
        assert stream.response.status_code == 503
        assert len(stream.response.content) == MAX_ERROR_BODY


async def test_malformed_heads_and_oversized_events_are_refused() -> None:
    for garbage in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n"):
        async with serving(Wire([garbage], hold=True)) as url:
            with pytest.raises(httpx.RemoteProtocolError):
                async with stream_of(url):
                    pass
    async with serving(Wire([b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000], hold=True)) as url:
        with pytest.raises(httpx.RemoteProtocolError, match="too large"):
            async with stream_of(url):
                pass
    second_line = b"\ndata: " + b"y" * 600 + b"\n\n"
    big = [OK_HEAD, chunk(b"event: put\ndata: " + b"x" * 600), chunk(second_line)]
    async with serving(Wire(big, hold=True)) as url, stream_of(url) as stream:
        with pytest.raises(EventTooLarge):
            await stream.next()
    endless_line = [OK_HEAD] + [chunk(b"z" * 500)] * 5
    async with serving(Wire(endless_line, hold=True)) as url, stream_of(url) as stream:
        with pytest.raises(EventTooLarge):
            await stream.next()


async def test_keepalives_hold_a_stream_open_and_silence_ends_it() -> None:
    living = Wire([OK_HEAD] + [chunk(KEEPALIVE)] * 8, hold=True, gap_s=0.1)
    async with serving(living) as url, stream_of(url, silence_s=0.3) as stream:
        with anyio.move_on_after(0.7):
            await stream.next()  # keep-alives are not events, and not silence
            raise AssertionError("a keep-alive was returned as an event")
        started = anyio.current_time()
        with pytest.raises(SilentStream):
            await stream.next()  # the keep-alives stopped after ~0.8 s
        assert anyio.current_time() - started < 1.5


async def test_a_stream_silent_from_the_start_and_a_server_that_never_answers() -> None:
    async with serving(Wire([OK_HEAD], hold=True)) as url, stream_of(url, silence_s=0.2) as stream:
        with pytest.raises(SilentStream):
            await stream.next()
    async with serving(Wire([], hold=True)) as url:
        with pytest.raises(httpx.ReadTimeout):
            async with (
                httpx.AsyncClient() as client,
                open_stream(
                    client,
                    httpx.URL(url),
                    {},
                    timeouts=httpx.Timeout(2.0, read=0.2),
                    silence_s=5.0,
                    max_event_bytes=1024,
                ),
            ):
                pass


async def test_a_proxied_url_is_read_through_httpx_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pieces = [OK_HEAD, chunk(KEEPALIVE + b"data: via the proxy\n\n"), b"0\r\n\r\n"]
    wire = Wire(pieces)
    async with serving(wire) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("NO_PROXY", "")
        async with stream_of("http://vendor.invalid") as stream:
            assert stream.response.status_code == 200
            assert await events_of(stream) == [SseEvent("message", "via the proxy")]
    assert wire.requests[0].startswith(b"GET http://vendor.invalid/stream?x=1 HTTP/1.1")


async def test_no_server_is_a_connect_error() -> None:
    async with serving(Wire([])) as url:
        pass  # the port is free again
    with pytest.raises(httpx.ConnectError):
        async with stream_of(url):
            pass


async def test_a_consumer_that_falls_behind_stops_the_reading_and_loses_nothing() -> None:
    count, padding = 2000, b"p" * 1000  # 2 MB: many socket reads (asyncio reads 256 KiB)
    events = [chunk(b"data: %d %s\n\n" % (i, padding)) for i in range(count)]
    wire = Wire([OK_HEAD, b"".join(events), b"0\r\n\r\n"], gap_s=0)
    async with serving(wire) as url, stream_of(url, limit=4096) as stream:
        await anyio.sleep(0.3)  # the server has sent what the socket takes
        protocol = stream._protocol  # type: ignore[attr-defined]
        assert protocol.paused
        assert len(protocol.events) < count // 4  # not everything read ahead
        found = await events_of(stream)
    assert [e.data.split()[0] for e in found] == [str(i) for i in range(count)]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


async def test_tls_is_verified_and_read(certificate: tuple[Path, Path]) -> None:
    key, cert = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    trusting = ssl.create_default_context(cafile=str(cert))
    wire = Wire([OK_HEAD, chunk(b"data: secret\n\n"), b"0\r\n\r\n"])
    async with serving(wire, tls=server) as url:
        async with stream_of(url, ssl_context=trusting) as stream:
            assert await events_of(stream) == [SseEvent("message", "secret")]
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            async with stream_of(url):  # the default context does not know this certificate
                pass
