"""One SSE subscription on a connection of its own, read by an asyncio `Protocol`.

Through httpx, every read of a stream costs an anyio receive (asyncio's reader is added and
removed around it), httpcore's per-read timeout scope, h11's events and three byte
iterators, and the caller's per-event watchdog scope: ~170 µs a keep-alive, 91 % of the
daemon's idle CPU at 10,000 accounts. Here the socket's bytes go straight from the event
loop's callback through the chunked decoder and `SseDecoder`: a keep-alive never wakes the
reading task, and one loop timer per stream (re-armed only when it fires) watches for
silence.

What the caller sees is what httpx gave it: `open_stream` yields an `EventStream` whose
`response` is an `httpx.Response` (status, headers and, for any answer but 200, its body,
read up to `MAX_ERROR_BODY`), so redirects, refusals and `Retry-After` are read as before,
and failures raise httpx's exceptions (`ConnectError`, `ConnectTimeout`, `ReadTimeout`,
`RemoteProtocolError`, `ReadError`). TLS uses httpx's default context (certifi, or
`SSL_CERT_FILE`/`SSL_CERT_DIR`). A URL the environment sends through a proxy is read
through the httpx client instead (`read_sse`), with the same interface.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final

import anyio
import httpx

from roost import __version__
from roost.providers.sse import SseDecoder, SseEvent, read_sse
from roost.providers.tls import client_context

MAX_HEAD_BYTES: Final = 64 * 1024  # status line and headers
MAX_ERROR_BODY: Final = 64 * 1024  # of an answer other than 200 (a vendor's message)
MAX_CHUNK_LINE: Final = 1024
PAUSE_AT_EVENTS: Final = 16  # events read but not yet taken: stop reading the socket


class SilentStream(Exception):
    """No event (keep-alives included) for the stream's silence limit."""


class EventStream:
    """The events of one open stream: `next()` until it returns None (a clean end)."""

    response: httpx.Response

    async def next(self) -> SseEvent | None:
        raise NotImplementedError


@asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient,
    url: httpx.URL,
    headers: Mapping[str, str],
    *,
    timeouts: httpx.Timeout,
    silence_s: float,
    max_event_bytes: int,
    skip: frozenset[str] = frozenset(),
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[EventStream]:
    """GET `url` as an event stream. Events named in `skip` (keep-alives) only count as
    signs of life; `next()` raises `SilentStream` after `silence_s` without any event."""
    if _proxied(url):
        async with client.stream(
            "GET", url, headers=headers, follow_redirects=False, timeout=timeouts
        ) as response:
            if response.status_code != 200:
                await response.aread()
            yield _HttpxStream(response, silence_s, max_event_bytes, skip)
        return
    protocol = _StreamProtocol(_request(url, headers), url, silence_s, max_event_bytes, skip)
    await _connect(protocol, url, timeouts, ssl_context)
    try:
        read_s = timeouts.read if timeouts.read is not None else silence_s
        yield _SocketStream(await protocol.head(read_s), protocol)
    finally:
        protocol.close()


def _proxied(url: httpx.URL) -> bool:
    proxies = urllib.request.getproxies()
    return url.scheme in proxies and not urllib.request.proxy_bypass(url.host)


async def _connect(
    protocol: _StreamProtocol,
    url: httpx.URL,
    timeouts: httpx.Timeout,
    ssl_context: ssl.SSLContext | None,
) -> None:
    tls = url.scheme == "https"
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(f"cannot stream from a {url.scheme!r} URL")
    host = url.host
    port = url.port or (443 if tls else 80)
    context = (ssl_context or client_context()) if tls else None
    loop = asyncio.get_running_loop()
    try:
        with anyio.fail_after(timeouts.connect):
            await loop.create_connection(
                lambda: protocol, host, port, ssl=context, server_hostname=host if tls else None
            )
    except TimeoutError:
        wait = timeouts.connect
        raise httpx.ConnectTimeout(f"no connection to {host}:{port} in {wait} s") from None
    except (OSError, ssl.SSLError) as exc:
        raise httpx.ConnectError(str(exc) or type(exc).__name__) from None


def _request(url: httpx.URL, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"GET {url.raw_path.decode('ascii')} HTTP/1.1",
        f"Host: {url.netloc.decode('ascii')}",
        "Accept-Encoding: identity",
        "Connection: close",
        f"User-Agent: roost/{__version__}",
    ]
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0"):
            raise httpx.LocalProtocolError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _StreamProtocol(asyncio.Protocol):
    """The connection: parses the head, un-chunks the body, decodes its events."""

    def __init__(
        self,
        request: bytes,
        url: httpx.URL,
        silence_s: float,
        max_event_bytes: int,
        skip: frozenset[str],
    ) -> None:
        self._request = request
        self._url = url
        self._silence_s = silence_s
        self._max_event_bytes = max_event_bytes
        self._skip = skip
        self.loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._head_done: asyncio.Future[None] = self.loop.create_future()
        self.status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: _Body | None = None
        self._error_body = bytearray()
        self.decoder: SseDecoder | None = None
        self.events: deque[SseEvent] = deque()
        self.failure: BaseException | None = None
        self.ended = False  # the body is complete
        self.waiter: asyncio.Future[None] | None = None
        self._last_event_at = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self.paused = False

    # --- asyncio's callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        try:
            if self._body is None:
                data = self._read_head(data)
                if self._body is None:
                    return
            self._body.feed(data, self)
        except (httpx.HTTPError, ValueError) as exc:  # EventTooLarge is a ValueError
            self._fail(exc)

    def eof_received(self) -> bool | None:
        if self._body is not None and self._body.close_delimited:
            self._end()
        elif not self.ended:
            self._fail(httpx.RemoteProtocolError("peer closed connection without a complete body"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended and self.failure is None:
            if exc is None and self._body is not None and self._body.close_delimited:
                self._end()
            else:
                message = f"connection lost: {exc}" if exc else "connection lost"
                self._fail(httpx.ReadError(message) if exc else httpx.RemoteProtocolError(message))
        self._transport = None

    # --- head ------------------------------------------------------------------------------

    def _read_head(self, data: bytes) -> bytes:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end == -1:
            if len(self._head) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError("response head too large")
            return b""
        head, rest = bytes(self._head[:end]), bytes(self._head[end + 4 :])
        self._head = bytearray()
        status_line, *lines = head.split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
        self.status = int(parts[1])
        for line in lines:
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise httpx.RemoteProtocolError(f"malformed header line {line[:80]!r}")
            self._headers.append((name, value.strip()))
        self._body = _Body.framing(self._headers)
        if self.status == 200:
            self.decoder = SseDecoder(self._max_event_bytes)
            self._last_event_at = self.loop.time()
            self._watch_at(self._last_event_at + self._silence_s)
            self._wake(self._head_done)
        return rest

    def body(self, data: bytes) -> None:
        """Un-chunked body bytes: events for a 200, a bounded message otherwise."""
        if self.decoder is None:
            self._error_body += data[: MAX_ERROR_BODY - len(self._error_body)]
            if len(self._error_body) >= MAX_ERROR_BODY:
                self._end()
            return
        self._queue(self.decoder.feed(data))

    def _queue(self, events: list[SseEvent]) -> None:
        if not events:
            return
        self._last_event_at = self.loop.time()
        self.events.extend(e for e in events if e.event not in self._skip)
        if self.events:
            if len(self.events) >= PAUSE_AT_EVENTS and self._transport is not None:
                self._transport.pause_reading()
                self.paused = True
            self._wake(self.waiter)

    def _watch(self) -> None:
        """The silence watchdog: one timer, moved on only when it fires."""
        now, due = self.loop.time(), self._last_event_at + self._silence_s
        if now < due or self.events or self.paused:  # alive, or the reader is behind
            self._watch_at(max(due, now + self._silence_s))
            return
        self._watchdog = None
        self._fail(SilentStream(f"no event for {self._silence_s:g} s"))

    def _watch_at(self, when: float) -> None:
        """Arm the watchdog at `when`, rounded up to a grain of the silence limit (≤ 1 s):
        thousands of streams' watchdogs then fire together, one loop wake-up a second."""
        grain = min(1.0, self._silence_s / 4)
        self._watchdog = self.loop.call_at(math.ceil(when / grain) * grain, self._watch)

    def _end(self) -> None:
        if self.decoder is not None:
            self._queue(self.decoder.finish())
        self.ended = True
        if self.decoder is None:
            self._wake(self._head_done)  # an error answer, read whole
        self._wake(self.waiter)
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: BaseException) -> None:
        if self.failure is None and not self.ended:
            self.failure = exc
        if self._head_done.done():
            self._wake(self.waiter)
        else:
            self._head_done.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()

    @staticmethod
    def _wake(future: asyncio.Future[None] | None) -> None:
        if future is not None and not future.done():
            future.set_result(None)

    # --- the stream's side -----------------------------------------------------------------

    async def head(self, read_s: float) -> httpx.Response:
        try:
            with anyio.fail_after(read_s):
                await self._head_done
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer in {read_s:g} s") from None
        request = httpx.Request("GET", self._url)
        content = bytes(self._error_body) if self.decoder is None else b""
        return httpx.Response(self.status, headers=self._headers, content=content, request=request)

    def resume(self) -> None:
        if self.paused and len(self.events) < PAUSE_AT_EVENTS // 2:
            self.paused = False
            if self._transport is not None:
                self._transport.resume_reading()

    def close(self) -> None:
        if not self._head_done.done():
            self._head_done.cancel()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.abort()
            self._transport = None


class _Body:
    """The body's framing: chunked, a Content-Length, or until the connection closes."""

    def __init__(self, chunked: bool, length: int | None) -> None:
        self.chunked = chunked
        self.close_delimited = not chunked and length is None
        self._left = length  # of a Content-Length body
        self._chunk_left = 0  # of the current chunk's data
        self._line = bytearray()  # a chunk-size line (or a chunk's CRLF) being read
        self._trailers = False

    @classmethod
    def framing(cls, headers: list[tuple[bytes, bytes]]) -> _Body:
        chunked, length = False, None
        for name, value in headers:
            key = name.lower()
            if key == b"transfer-encoding":
                chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            elif key == b"content-length":
                if not value.isdigit():
                    raise httpx.RemoteProtocolError("malformed Content-Length")
                length = int(value)
        return cls(chunked, None if chunked else length)

    def feed(self, data: bytes, to: _StreamProtocol) -> None:
        if not self.chunked:
            if self._left is not None:
                data = data[: self._left]
                self._left -= len(data)
            if data:
                to.body(data)
            if self._left == 0:
                to._end()
            return
        self._unchunk(data, to)

    def _unchunk(self, data: bytes, to: _StreamProtocol) -> None:
        view, at = memoryview(data), 0
        while at < len(data) and not to.ended and to.failure is None:
            if self._chunk_left:
                piece = view[at : at + self._chunk_left]
                at += len(piece)
                self._chunk_left -= len(piece)
                to.body(bytes(piece))
                continue
            newline = data.find(b"\n", at)
            if newline == -1:
                self._line += view[at:]
                if len(self._line) > MAX_CHUNK_LINE:
                    raise httpx.RemoteProtocolError("chunk header too long")
                return
            self._line += view[at : newline + 1]
            at = newline + 1
            self._chunk_line(bytes(self._line).strip(), to)
            self._line.clear()

    def _chunk_line(self, line: bytes, to: _StreamProtocol) -> None:
        """A chunk-size line, the CRLF after a chunk's data, or a trailer line."""
        if self._trailers:
            if not line:
                to._end()
            return
        if not line:
            return  # the CRLF that ends a chunk's data
        size = line.split(b";", 1)[0].strip()
        try:
            self._chunk_left = int(size, 16)
        except ValueError:
            raise httpx.RemoteProtocolError(f"malformed chunk size {size[:20]!r}") from None
        if self._chunk_left == 0:
            self._trailers = True


class _SocketStream(EventStream):
    def __init__(self, response: httpx.Response, protocol: _StreamProtocol) -> None:
        self.response = response
        self._protocol = protocol

    async def next(self) -> SseEvent | None:
        p = self._protocol
        while not p.events:
            if p.failure is not None:
                raise p.failure
            if p.ended:
                return None
            p.waiter = p.loop.create_future()
            try:
                await p.waiter
            finally:
                p.waiter = None
        event = p.events.popleft()
        if p.paused:
            p.resume()
        return event


class _HttpxStream(EventStream):
    """The same interface over an httpx response (a URL behind a proxy)."""

    def __init__(
        self, response: httpx.Response, silence_s: float, max_event_bytes: int, skip: frozenset[str]
    ) -> None:
        self.response = response
        self._events = read_sse(response, max_event_bytes) if response.status_code == 200 else None
        self._silence_s = silence_s
        self._skip = skip

    async def next(self) -> SseEvent | None:
        assert self._events is not None
        while True:
            with anyio.move_on_after(self._silence_s) as watchdog:
                event = await anext(self._events, None)
            if watchdog.cancelled_caught:
                raise SilentStream(f"no event for {self._silence_s:g} s")
            if event is None or event.event not in self._skip:
                return event
