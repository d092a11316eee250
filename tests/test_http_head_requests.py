"""A HEAD request (uptime checkers send them) gets the head of the answer the same GET or
POST would get, with no body, on every listener roost's HTTP server runs (metrics,
webhook, web page). Before the fix the server sent the body anyway, h11 refused it
(LocalProtocolError), and every HEAD cost a "connection failed" warning; with keep-alive
(the simulators) the connection was lost (an audit of hostile input found it)."""

from __future__ import annotations

import pytest

from roost.host import httpserver, listeners
from tests.test_httpserver import LIMITS, echo, raw

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("keep_alive", [False, True])
async def test_a_head_request_gets_a_head_and_no_error(keep_alive: bool) -> None:
    before = dict(listeners.ERRORS.total)
    async with httpserver.running(echo, "head", LIMITS, keep_alive=keep_alive) as server:
        head = b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n"
        get = b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        answer = await raw(server.port, head + get if keep_alive else head)
    heads = answer.count(b"HTTP/1.1 200 OK")
    assert heads == (2 if keep_alive else 1), answer
    assert answer.count(b'"method": "GET"') == (1 if keep_alive else 0)  # no body for HEAD
    assert b"content-length: " in answer.lower()
    assert dict(listeners.ERRORS.total) == before  # nothing went wrong
