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
from roost.core.fastinit import fast_init


class EventTooLarge(PayloadError):
    pass


@fast_init  # one per event read: the cheaper `__init__`
@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str = ""


class _Parser:
    """The fields of one event, line by line. A line is read where it lies in the decoder's
    buffer: only a field's value is decoded (a put's data line is most of a stream's bytes,
    so it is copied once, not sliced, decoded, split and trimmed)."""

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._event = ""
        self._data: list[str] = []
        self._size = 0
        self._id = ""

    def line(
        self, buffer: bytes | bytearray, view: memoryview, start: int, end: int
    ) -> SseEvent | None:
        """The line `buffer[start:end]` (`view` is the buffer's memoryview)."""
        if start == end:
            return self._dispatch()
        if buffer[start] == _COLON:
            return None
        colon = buffer.find(b":", start, end)
        if colon == -1:
            name, value_at = bytes(view[start:end]), end
        else:
            name, value_at = bytes(view[start:colon]), colon + 1
            if value_at < end and buffer[value_at] == _SPACE:
                value_at += 1
        if name == b"data":
            self._size += end - start
            if self._size > self._max:
                raise EventTooLarge(f"an event exceeded {self._max} bytes")
            self._data.append(str(view[value_at:end], "utf-8", "replace"))
        elif name == b"event":
            self._event = str(view[value_at:end], "utf-8", "replace")
        elif name == b"id":
            value = str(view[value_at:end], "utf-8", "replace")
            if "\0" not in value:
                self._id = value
        return None

    def _dispatch(self) -> SseEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data, self._size = "", [], 0
        if not data:
            return None
        return SseEvent(event, data[0] if len(data) == 1 else "\n".join(data), self._id)


_COLON, _SPACE = ord(":"), ord(" ")


class SseDecoder:
    """Bytes in, complete events out; never holds a line or an event over the bound."""

    __slots__ = ("_buffer", "_max", "_parser", "_scanned")

    def __init__(self, max_event_bytes: int) -> None:
        self._max = max_event_bytes
        self._parser = _Parser(max_event_bytes)
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no line end

    def feed(self, chunk: bytes, start: int = 0, stop: int | None = None) -> list[SseEvent]:
        """The events `chunk[start:stop]` completes. Its whole lines are read where they
        lie in `chunk`; only a line begun in an earlier chunk, or left unfinished, is
        copied into the buffer."""
        stop = len(chunk) if stop is None else stop
        events: list[SseEvent] = []
        if self._buffer:  # a line begun earlier: read on in the buffer
            self._buffer += memoryview(chunk)[start:stop]
            self._read_lines(self._buffer, self._scanned, len(self._buffer), events)
        else:
            start = self._read_lines(chunk, start, stop, events)
            self._buffer += memoryview(chunk)[start:stop]
        self._scanned = max(0, len(self._buffer) - 1)  # a last CR may be half of a CRLF
        if len(self._buffer) > self._max:
            raise EventTooLarge(f"a line exceeded {self._max} bytes")
        return events

    def _read_lines(
        self, data: bytes | bytearray, start: int, stop: int, events: list[SseEvent]
    ) -> int:
        """Read the lines of `data[start:stop]` that have ended (the search for their ends
        may begin later, at `start` = the buffer's scanned bytes); returns where the
        unfinished rest begins. A buffer given as `data` loses what was read."""
        begin = 0 if data is self._buffer else start
        with memoryview(data) as view:  # released before the buffer is resized
            while True:
                cut = _line_end(data, max(begin, start), stop)
                if cut is None:
                    break
                end, after = cut
                event = self._parser.line(data, view, begin, end)
                if event is not None:
                    events.append(event)
                begin = start = after
        if data is self._buffer:
            del self._buffer[:begin]
        return begin

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


def _line_end(buffer: bytes | bytearray, start: int, stop: int) -> tuple[int, int] | None:
    """Where the first line from `start` ends (start of the terminator, end of it) before
    `stop`, if it has ended."""
    lf = buffer.find(b"\n", start, stop)
    cr = buffer.find(b"\r", start, stop if lf == -1 else lf)  # only up to the LF
    if cr == -1:
        return None if lf == -1 else (lf, lf + 1)
    if cr + 1 == stop:
        return None  # a CR at the very end may be the first half of a CRLF
    return (cr, cr + 2) if buffer[cr + 1] == 0x0A else (cr, cr + 1)
