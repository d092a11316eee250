"""The whole time one vendor request may take, headers and body, by kind of call.

httpx times each connect, read and write on its own, so a server that trickles one byte
every few seconds holds a request for as long as it likes: a Netatmo poll round (and the
alarms it would deliver), a token refresh or a command stalls for hours. Every vendor
request is awaited through `bounded`, which gives it one deadline in all; a request past
it raises `TotalTimeout`, an `httpx.TimeoutException`, and fails exactly as an httpx
timeout does (same retry, back-off and health).

The caps are the `RequestDeadlines` the daemon lends a provider (`ProviderContext`). The
kind of call is set around the code that makes it (`deadline`): the provider core sets
the read cap around a subscription and the command cap around a write (never past the
command's own deadline), the token keeper the refresh cap around a refresh. A request held
open on purpose (a long poll) names how long the server may hold it (`hold_s`). The
long-lived event streams are not bounded here: their keep-alive watchdogs guard them.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio
import httpx

from roost.providers.base import RequestDeadlines


class TotalTimeout(httpx.TimeoutException):
    """No whole answer within the request's deadline."""


# (seconds each request may take, the monotonic time no request may run past)
_LIMIT: ContextVar[tuple[float, float]] = ContextVar(
    "roost_request_deadline", default=(RequestDeadlines.read_s, math.inf)
)


@contextmanager
def deadline(cap_s: float, *, within_s: float | None = None) -> Iterator[None]:
    """Each request made inside may take `cap_s` in all; with `within_s`, none runs past
    that long from now. An enclosing deadline's end still holds."""
    _, end = _LIMIT.get()
    if within_s is not None:
        end = min(end, anyio.current_time() + within_s)
    token = _LIMIT.set((cap_s, end))
    try:
        yield
    finally:
        _LIMIT.reset(token)


async def bounded(request: Awaitable[httpx.Response], *, hold_s: float = 0.0) -> httpx.Response:
    """The answer to `request` (a client call, not yet awaited), whole within its deadline
    plus `hold_s` (how long the server may hold a long poll); else `TotalTimeout`."""
    cap, end = _LIMIT.get()
    allowed = max(0.0, min(cap + hold_s, end - anyio.current_time()))
    try:
        with anyio.fail_after(allowed):
            return await request
    except TimeoutError:
        raise TotalTimeout(f"no whole answer within {allowed:.3g} s") from None
