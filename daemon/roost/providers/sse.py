"""Server-Sent Events read from a byte stream, with a hard bound on an event's size.

httpx-sse accumulates whole lines and events with no limit, so a vendor (or a broken
proxy) sending a 20 MB line would cost 20 MB and more. Here nothing larger than
`max_event_bytes` is ever held: such an event raises `EventTooLarge` and the caller
reconnects. Parsing follows the WHATWG rules: CR, LF or CRLF line ends, `:` comments,
`data` lines joined with newlines, a blank line dispatches.

`SseDecoder` takes the bytes as they come (from httpx in `read_sse`, or straight from a
socket in providers/event_stream.py) and returns the events they complete.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx

from roost.core.errors import PayloadError


class EventTooLarge(PayloadError):
    pass


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str = ""


class _Parser:
    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id = ""

    def line(self, raw: bytes) -> SseEvent | None:
        if not raw:
            return self._dispatch()
        text = raw.decode("utf-8", errors="replace")
        if text.startswith(":"):
            return None
        name, _, value = text.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._size += len(raw)
            if self._size > self._max:
                raise EventTooLarge(f"an event exceeded {self._max} bytes")
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data, self._size = "", [], 0
        if not data:
            return None
        return SseEvent(event, "\n".join(data), self._id)


class SseDecoder:
    """Bytes in, complete events out; never holds a line or an event over the bound."""

    __slots__ = ("_buffer", "_max", "_parser", "_scanned")

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._parser = _Parser(max_event_bytes)
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no line end

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer
        buffer += chunk
        events: list[SseEvent] = []
        start = 0
        while True:
            cut = _line_end(buffer, max(start, self._scanned))
            if cut is None:
                break
            end, after = cut
            event = self._parser.line(bytes(buffer[start:end]))
            if event is not None:
                events.append(event)
            start = after
        if start:
            del buffer[:start]
        self._scanned = max(0, len(buffer) - 1)  # a last CR may be half of a CRLF
        if len(buffer) > self._max:
            raise EventTooLarge(f"a line exceeded {self._max} bytes")
        return events

    def finish(self) -> list[SseEvent]:
        """The body has ended: a CR held back as a possible half of a CRLF ends its line."""
        return self.feed(b"\n") if self._buffer.endswith(b"\r") else []


async def read_sse(
    response: httpx.Response, max_event_bytes: int
) -> AsyncGenerator[SseEvent, None]:
    """The events of a streaming response; ends when the server closes the stream."""
    decoder = SseDecoder(max_event_bytes)
    async for chunk in response.aiter_bytes():
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.finish():
        yield event


def _line_end(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """Where the first line from `start` ends (start of the terminator, end of it), if it
    has ended."""
    cr, lf = buffer.find(b"\r", start), buffer.find(b"\n", start)
    if cr == -1 and lf == -1:
        return None
    if cr != -1 and (lf == -1 or cr < lf):
        if cr + 1 == len(buffer):
            return None  # a CR at the very end may be the first half of a CRLF
        return (cr, cr + 2) if buffer[cr + 1] == 0x0A else (cr, cr + 1)
    return lf, lf + 1
