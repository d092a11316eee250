"""The bounded SSE reader over a real socket: framing, line ends, the size bound."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from roost.providers.sse import EventTooLarge, SseEvent, read_sse
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
