"""One small HTTP/1.1 server (h11 on anyio) for every HTTP listener roost has: a vendor's
webhook receiver, the metrics endpoint, the OAuth callback of `roost auth`, and the
vendor simulators.

A handler takes a `Request` and returns what to send: a whole `Response`, a
`StreamingResponse` (chunked, each chunk flushed as it is produced; the connection closes
when it ends, or as soon as the client hangs up) or a `Hangup` (no answer: the connection
closes, as a dropped network path would; the simulators use it for fault injection).
A server's `headers` go on every response it sends, its own error answers included.

Each server is a bounded listener (`listeners.serve`): its connection limit and the
process's descriptor budget, one task per connection. On top of that, per request:
- the whole request (head and body) arrives within `Limits.read_timeout_s`, or the
  client gets 408 and the connection closes (a slow drip cannot hold a connection);
- the head is at most `Limits.max_request` bytes (431) and the body at most
  `Limits.max_body` (413); anything h11 cannot parse is 400;
- each send completes within `Limits.write_timeout_s` (a client that never reads);
- a handler that raises gets the client a 500 and one rate-limited log line.
`keep_alive=False` (the daemon's listeners) answers one request per connection and says
`Connection: close`; the simulators keep connections alive as a cloud does.
"""

from __future__ import annotations

import json
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import h11

from roost.host import listeners

RECEIVE = 65536


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the raw request target: path and query
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Response:
    """A whole response. A `bytes` body is sent as is; anything else is sent as JSON (a
    `str` too). `sent` is called once the response is out (or the client is gone)."""

    status: int
    body: object = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    sent: Callable[[], None] | None = None

    def encode(self) -> tuple[list[tuple[str, str]], bytes]:
        headers = {name.lower(): value for name, value in self.headers.items()}
        if isinstance(self.body, bytes):
            payload = self.body
        else:
            payload = json.dumps(self.body).encode()
            headers.setdefault("content-type", "application/json; charset=UTF-8")
        headers["content-length"] = str(len(payload))
        return list(headers.items()), payload


@dataclass(frozen=True)
class StreamingResponse:
    """A response whose body is sent chunk by chunk, each chunk flushed at once.

    The connection closes when the body ends, when the client hangs up (noticed at once,
    not at the next chunk) or when `Server.close_streams()` aborts it. `done` is called
    once the stream is over, however it ended.
    """

    status: int
    body: AsyncIterator[bytes]
    headers: Mapping[str, str] = field(default_factory=dict)
    done: Callable[[], None] | None = None


@dataclass(frozen=True)
class Hangup:
    """No answer at all: the connection closes, as a dropped network path would."""

    status: int = 0


Answer = Response | StreamingResponse | Hangup
Handler = Callable[[Request], Awaitable[Answer]]

_Stream = anyio.abc.ByteStream
_CLOSED = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class _BodyTooLarge(Exception):
    pass


class Server:
    """An HTTP server on one listener: what it answers with, and its live streams."""

    def __init__(
        self,
        handler: Handler,
        name: str,
        limits: listeners.Limits,
        *,
        keep_alive: bool = False,
        host: str = "",
        port: int = 0,
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self._handler = handler
        self._limits = limits
        self._keep_alive = keep_alive
        self._headers = list(headers)
        self._streams: set[anyio.CancelScope] = set()
        self._streams_gone: anyio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def streams_ended(self) -> None:
        """Return once no streaming response is in flight."""
        while self._streams:
            self._streams_gone = anyio.Event()
            await self._streams_gone.wait()

    def close_streams(self) -> None:
        """Abort every streaming response in flight: its connection closes mid-body."""
        for scope in self._streams:
            scope.cancel()

    async def serve(
        self, listener: anyio.abc.Listener[Any], budget: listeners.FdBudget | None = None
    ) -> None:
        """Accept on `listener` until cancelled (the bounded listener closes each stream)."""
        await listeners.serve(listener, self.connection, self.name, self._limits, budget)

    async def connection(self, stream: _Stream) -> None:
        """Serve the requests of one connection."""
        limits = self._limits
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_request)
        while True:
            try:
                with anyio.fail_after(limits.read_timeout_s):
                    request = await _receive_request(connection, stream, limits)
            except TimeoutError:
                listeners.ERRORS.note(f"{self.name}: request too slow")
                await self._send_error(connection, stream, 408)
                return
            except h11.RemoteProtocolError as exc:
                listeners.ERRORS.note(f"{self.name}: bad request", error=str(exc)[:80])
                await self._send_error(connection, stream, exc.error_status_hint)
                return
            except _BodyTooLarge:
                listeners.ERRORS.note(f"{self.name}: request body too large")
                await self._send_error(connection, stream, 413)
                return
            if request is None:
                return
            answer = await self._answer(request)
            if isinstance(answer, Hangup):
                return
            if isinstance(answer, StreamingResponse):
                try:
                    await self._send_streaming(connection, stream, answer)
                finally:
                    if answer.done is not None:
                        answer.done()
                return
            try:
                await self._send_response(connection, stream, answer, request.method == "HEAD")
            finally:
                if answer.sent is not None:
                    answer.sent()
            if not self._keep_alive or connection.our_state is not h11.DONE:
                return
            if connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def _answer(self, request: Request) -> Answer:
        try:
            return await self._handler(request)
        except Exception as exc:  # one request's failure is the client's 500, nothing more
            listeners.ERRORS.note(
                f"{self.name}: handler failed",
                method=request.method,
                path=request.path,
                error=f"{type(exc).__name__}: {exc}",
            )
            return Response(500, b"internal error\n", {"content-type": "text/plain"})

    def _closing(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return headers if self._keep_alive else [*headers, ("connection", "close")]

    async def _send_response(
        self, connection: h11.Connection, stream: _Stream, response: Response, head: bool = False
    ) -> None:
        """The whole response; to a HEAD request only its head (h11 refuses a body there)."""
        headers, payload = response.encode()
        await self._send(connection, stream, self._head(response.status, self._closing(headers)))
        if payload and not head:
            await self._send(connection, stream, h11.Data(data=payload))
        await self._send(connection, stream, h11.EndOfMessage())

    async def _send_error(self, connection: h11.Connection, stream: _Stream, status: int) -> None:
        if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        reason = _reason(status) or "error"
        body = f"{reason.lower()}\n".encode()
        response = Response(status, body, {"content-type": "text/plain", "connection": "close"})
        try:
            headers, payload = response.encode()
            await self._send(connection, stream, self._head(status, headers))
            await self._send(connection, stream, h11.Data(data=payload))
            await self._send(connection, stream, h11.EndOfMessage())
        except (*_CLOSED, h11.ProtocolError, TimeoutError):
            pass

    async def _send_streaming(
        self, connection: h11.Connection, stream: _Stream, response: StreamingResponse
    ) -> None:
        headers = {name.lower(): value for name, value in response.headers.items()}
        headers |= {"transfer-encoding": "chunked", "connection": "close"}
        scope = anyio.CancelScope()
        self._streams.add(scope)
        try:
            with scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(_cancel_on_hangup, stream, scope)
                    head = self._head(response.status, [*headers.items()])
                    await self._send(connection, stream, head)
                    async for chunk in response.body:
                        await self._send(connection, stream, h11.Data(data=chunk))
                    await self._send(connection, stream, h11.EndOfMessage())
                    tg.cancel_scope.cancel()
        except _CLOSED:
            pass  # the client left mid-stream: a stream's ordinary end
        finally:
            self._streams.discard(scope)
            if not self._streams and self._streams_gone is not None:
                self._streams_gone.set()
            if isinstance(response.body, AsyncGenerator):
                with anyio.CancelScope(shield=True):
                    await response.body.aclose()

    def _head(self, status: int, headers: list[tuple[str, str]]) -> h11.Response:
        return h11.Response(
            status_code=status, headers=[*headers, *self._headers], reason=_reason(status)
        )

    async def _send(self, connection: h11.Connection, stream: _Stream, event: h11.Event) -> None:
        data = connection.send(event)
        if data:
            with anyio.fail_after(self._limits.write_timeout_s):
                await stream.send(data)


@asynccontextmanager
async def running(
    handler: Handler,
    name: str,
    limits: listeners.Limits,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    keep_alive: bool = False,
    budget: listeners.FdBudget | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> AsyncIterator[Server]:
    """Listen on host:port (port 0 picks a free one) until the context is left."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(anyio.abc.SocketAttribute.local_port)
    server = Server(
        handler, name, limits, keep_alive=keep_alive, host=host, port=bound, headers=headers
    )
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(server.serve, listener, budget)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()


async def _receive_request(
    connection: h11.Connection, stream: _Stream, limits: listeners.Limits
) -> Request | None:
    """The next request, or None when the client closed the connection between requests."""
    head: h11.Request | None = None
    body = bytearray()
    fed = len(connection.trailing_data[0])  # what a previous request left over
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            data = await _receive(stream)
            fed += len(data)
            connection.receive_data(data)
        elif isinstance(event, h11.Request):
            # h11 caps only an incomplete head; a whole one in one read is capped here
            if fed - len(connection.trailing_data[0]) > limits.max_request:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limits.max_body:
                raise _BodyTooLarge
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return _request(head, bytes(body))
        else:
            return None


async def _receive(stream: _Stream) -> bytes:
    try:
        return await stream.receive(RECEIVE)
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return b""  # h11's end of stream


def _request(head: h11.Request, body: bytes) -> Request:
    target = head.target.decode("latin-1")
    parts = urlsplit(target)
    headers: dict[str, str] = {}
    for raw_name, raw_value in head.headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return Request(
        method=head.method.decode("ascii"),
        target=target,
        path=parts.path,
        query=dict(parse_qsl(parts.query)),
        headers=headers,
        body=body,
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


async def _cancel_on_hangup(stream: _Stream, scope: anyio.CancelScope) -> None:
    """A streaming response's request is complete, so anything the client does now (it
    closes, or it sends more, which a `Connection: close` stream does not read) ends it."""
    try:
        await stream.receive(1)
    except (*_CLOSED, OSError):
        pass
    scope.cancel()
