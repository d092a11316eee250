"""A small HTTP/1.1 server on anyio TCP listeners and h11, for the simulators.

It serves one async handler per request, keeps connections alive, and sends streaming
responses with chunked transfer encoding, flushing every chunk as it is produced. Every
connection is a task in the task group owned by `serve`; leaving `serve` cancels them.
"""

from __future__ import annotations

import json
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
)
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
import h11
import structlog

log = structlog.get_logger(__name__)

_MAX_RECEIVE = 65536


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
    """A whole response. A `bytes` body is sent as is; anything else is sent as JSON."""

    status: int
    body: object = b""
    headers: Mapping[str, str] = field(default_factory=dict)

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

    The connection closes when the body ends. `Server.close_streams()` aborts it mid-way.
    """

    status: int
    body: AsyncIterator[bytes]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hangup:
    """No answer at all: the connection closes, as a dropped network path would."""

    status: int = 0


Answer = Response | StreamingResponse | Hangup
Handler = Callable[[Request], Awaitable[Answer]]

_Stream = anyio.abc.ByteStream
_CLOSED = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream)


class Server:
    """A running server: where it listens, and controls over its live connections."""

    def __init__(self, handler: Handler, task_group: anyio.abc.TaskGroup, host: str, port: int):
        self.host = host
        self.port = port
        self._handler = handler
        self._task_group = task_group
        self._streams: set[anyio.CancelScope] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    def close_streams(self) -> None:
        """Abort every streaming response in flight: its connection closes mid-body."""
        for scope in self._streams:
            scope.cancel()

    def start_soon(
        self, func: Callable[[], Coroutine[Any, Any, object]], name: str | None = None
    ) -> None:
        """Run a background task that lives as long as the server."""
        self._task_group.start_soon(func, name=name)

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        async with stream:
            try:
                await self._serve_requests(connection, stream)
            except h11.RemoteProtocolError:
                await _send_quietly(connection, stream, Response(400, b"bad request"))
            except (*_CLOSED, h11.ProtocolError):
                pass

    async def _serve_requests(self, connection: h11.Connection, stream: _Stream) -> None:
        while True:
            request = await _receive_request(connection, stream)
            if request is None:
                return
            response = await self._respond(request)
            if isinstance(response, Hangup):
                return
            if isinstance(response, StreamingResponse):
                await self._send_streaming(connection, stream, response)
            else:
                await _send_response(connection, stream, response)
            if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def _respond(self, request: Request) -> Response | StreamingResponse | Hangup:
        try:
            return await self._handler(request)
        except Exception:
            log.exception("simulator handler failed", method=request.method, path=request.path)
            return Response(500, b"internal simulator error")

    async def _send_streaming(
        self, connection: h11.Connection, stream: _Stream, response: StreamingResponse
    ) -> None:
        headers = {name.lower(): value for name, value in response.headers.items()}
        headers |= {"transfer-encoding": "chunked", "connection": "close"}
        scope = anyio.CancelScope()
        self._streams.add(scope)
        try:
            with scope:
                await _send(connection, stream, _head(response.status, list(headers.items())))
                async for chunk in response.body:
                    await _send(connection, stream, h11.Data(data=chunk))
                await _send(connection, stream, h11.EndOfMessage())
        finally:
            self._streams.discard(scope)
            if isinstance(response.body, AsyncGenerator):
                with anyio.CancelScope(shield=True):
                    await response.body.aclose()


@asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Server]:
    """Listen on host:port (port 0 picks a free one) until the context is left."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound_port = listener.extra(anyio.abc.SocketAttribute.local_port)
    failure: Exception | None = None
    async with listener, anyio.create_task_group() as task_group:
        server = Server(handler, task_group, host, bound_port)
        task_group.start_soon(listener.serve, server._serve_connection, task_group)
        try:
            yield server
        except Exception as error:
            # Re-raised below the task group so callers see it unwrapped, not in a group.
            failure = error
        finally:
            task_group.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _receive_request(connection: h11.Connection, stream: _Stream) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await _receive(stream))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return _request(head, bytes(body))
        else:
            return None


async def _receive(stream: _Stream) -> bytes:
    try:
        return await stream.receive(_MAX_RECEIVE)
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return b""


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


def _head(status: int, headers: list[tuple[str, str]]) -> h11.Response:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return h11.Response(status_code=status, headers=headers, reason=reason)


async def _send_response(connection: h11.Connection, stream: _Stream, response: Response) -> None:
    headers, payload = response.encode()
    await _send(connection, stream, _head(response.status, headers))
    if payload:
        await _send(connection, stream, h11.Data(data=payload))
    await _send(connection, stream, h11.EndOfMessage())


async def _send_quietly(connection: h11.Connection, stream: _Stream, response: Response) -> None:
    if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    try:
        await _send_response(connection, stream, response)
    except (*_CLOSED, h11.ProtocolError):
        pass


async def _send(connection: h11.Connection, stream: _Stream, event: h11.Event) -> None:
    data = connection.send(event)
    if data:
        await stream.send(data)
