"""The bounded SSE reader over a real socket: framing, line ends, the size bound."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.providers.sse import EventTooLarge, SseDecoder, SseEvent, read_sse
from roost.simulator.http import Request, StreamingResponse, serve

pytestmark = pytest.mark.anyio


def chunks(*parts: bytes) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part
            await anyio.sleep(0.001)

    return StreamingResponse(200, body(), {"content-type": "text/event-stream"})


async def read_all(*parts: bytes, limit: int = 1024) -> list[SseEvent]:
    async def handler(request: Request) -> StreamingResponse:
        return chunks(*parts)

    async with (
        serve(handler) as server,
        httpx.AsyncClient() as client,
        client.stream("GET", server.url) as response,
    ):
        return [event async for event in read_sse(response, limit)]


async def test_events_split_across_chunks_and_every_line_ending() -> None:
    events = await read_all(
        b'event: put\r\ndata: {"a"',
        b": 1}\r",
        b"\n\r\n: a comment\nevent: keep-alive\ndata: null\n\n",
        b"event: multi\rdata: one\rdata: two\r\r",
        b"retry: 10\n\n",  # no data: not an event
    )
    assert events == [
        SseEvent("put", '{"a": 1}'),
        SseEvent("keep-alive", "null"),
        SseEvent("multi", "one\ntwo"),
    ]


async def test_utf8_split_in_the_middle_of_a_character() -> None:
    text = "data: °C\n\n".encode()
    events = await read_all(text[:7], text[7:])
    assert events == [SseEvent("message", "°C")]


async def test_an_oversized_event_is_refused_without_holding_it() -> None:
    with pytest.raises(EventTooLarge):
        await read_all(b"event: put\n", b"data: " + b"x" * 600, b"\ndata: " + b"y" * 600 + b"\n\n")
    with pytest.raises(EventTooLarge):
        await read_all(b"data: " + b"z" * 5000)  # one endless line


# ---- the decoder against the rules, any bytes split anywhere -------------------------------


def reference(stream: bytes, max_event_bytes: int) -> list[SseEvent] | str:
    """The WHATWG event-stream rules, read from the whole stream at once (and the bound on
    a data line's bytes): what `SseDecoder` must give however the bytes arrive."""
    text, events, event, data, size, last_id = stream, [], "", [], 0, ""
    lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    for raw in lines[:-1]:  # the last piece has not ended
        if not raw:
            if data:
                events.append(SseEvent(event or "message", "\n".join(data), last_id))
            event, data, size = "", [], 0
            continue
        if raw.startswith(b":"):
            continue
        name, _, value = raw.decode("utf-8", "replace").partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            size += len(raw)
            if size > max_event_bytes:
                return "too large"
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
    return events


_LINES = st.lists(
    st.one_of(
        st.sampled_from([b"", b"event: put", b"event:x", b"event", b"data", b"data:", b": hi"]),
        st.sampled_from([b"id: 7", b"id:a\x00b", b"retry: 5", b"data:  two spaces"]),
        st.binary(max_size=12).map(lambda b: b"data: " + b),
        st.text(max_size=6).map(lambda t: ("data:" + t).encode()),
        st.binary(max_size=8),
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(
    lines=_LINES,
    ends=st.lists(st.sampled_from([b"\n", b"\r", b"\r\n"]), min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_the_decoder_reads_any_stream_split_anywhere_as_the_rules_say(
    lines: list[bytes], ends: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(line + ends[i % len(ends)] for i, line in enumerate(lines))
    if stream.endswith(b"\r"):
        stream += b"\n"  # a CR at the very end waits to see if an LF follows: not ended yet
    decoder, got = SseDecoder(40), []
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    expected = reference(stream, 40)
    try:
        for lo, hi in itertools.pairwise(bounds):
            got.extend(decoder.feed(stream, lo, hi) if lo % 2 else decoder.feed(stream[lo:hi]))
    except EventTooLarge:
        got_or_refused: list[SseEvent] | str = "too large"
    else:
        got_or_refused = got
    assert got_or_refused == expected  # (no line here is long enough to be held over it)
