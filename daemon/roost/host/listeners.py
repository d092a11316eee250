"""Bounded listeners: what every local server of roost (control socket, metrics, webhook,
OAuth callback) shares so that a neighbour on the same machine cannot take the daemon down.

- A connection limit per listener and one file-descriptor budget for all of them, so the
  providers, the store and the sinks always have descriptors left. A connection beyond
  either is accepted and closed at once (the kernel's backlog would otherwise fill up).
- An accept loop that survives EMFILE/ENFILE (it backs off and logs) instead of ending.
- Each connection runs in its own task; whatever goes wrong in it (a hang-up, a reset,
  garbage, a bug in the handler) ends that connection only and is logged rate-limited.
- `read_until` and `send` give per-connection read and write deadlines and a size cap.
"""

from __future__ import annotations

import errno
import resource
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from anyio.abc import ByteStream, Listener

log = structlog.get_logger(__name__)

# Descriptors kept free for everything that is not a listener's connection.
FD_RESERVE = 256
ACCEPT_BACKOFF_S = 0.1
_ACCEPT_PRESSURE = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True)
class Limits:
    """How much one listener may take."""

    max_connections: int = 64
    read_timeout_s: float = 10.0  # the whole request, so a slow drip (slowloris) ends too
    write_timeout_s: float = 10.0  # each send, so a client that never reads ends too
    max_request: int = 64 * 1024  # a line, or an HTTP request's head
    max_body: int = 64 * 1024  # an HTTP request's body (httpserver.py)


class RequestTooLarge(Exception):
    pass


class RateLimitedLog:
    """One warning line per kind per `window_s`, carrying how many happened since the last."""

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._window_s = window_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}
        self.total: dict[str, int] = {}

    def note(self, kind: str, **fields: Any) -> bool:
        """Count one `kind`; log it if its window has passed. True when a line was written."""
        self._count[kind] = self._count.get(kind, 0) + 1
        self.total[kind] = self.total.get(kind, 0) + 1
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._window_s:
            return False
        count = self._count.pop(kind)
        self._last[kind] = now
        log.warning(kind, count=count, per_s=self._window_s, **fields)
        return True


ERRORS = RateLimitedLog()


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit", soft=soft, hard=hard, error=str(exc))
    return soft


@dataclass
class FdBudget:
    """Descriptors all listeners' connections together may hold."""

    limit: int
    used: int = 0

    @classmethod
    def from_rlimit(cls, reserve: int = FD_RESERVE) -> FdBudget:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return cls(soft - reserve if soft > 2 * reserve else max(16, soft // 2))


_BUDGET: list[FdBudget] = []


def shared_budget() -> FdBudget:
    """The one budget of this process, sized from the open-file limit at first use."""
    if not _BUDGET:
        _BUDGET.append(FdBudget.from_rlimit())
    return _BUDGET[0]


@dataclass
class _Gate:
    name: str
    limits: Limits
    budget: FdBudget
    active: int = 0
    refused: int = field(default=0)

    def admit(self) -> bool:
        if self.active >= self.limits.max_connections or self.budget.used >= self.budget.limit:
            return False
        self.active += 1
        self.budget.used += 1
        return True

    def release(self) -> None:
        self.active -= 1
        self.budget.used -= 1


Handler = Callable[[Any], Awaitable[None]]


async def serve(
    listener: Listener[Any],
    handler: Handler,
    name: str,
    limits: Limits,
    budget: FdBudget | None = None,
) -> None:
    """Accept on `listener` until cancelled, each admitted connection in its own task."""
    gate = _Gate(name, limits, shared_budget() if budget is None else budget)
    parts = getattr(listener, "listeners", [listener])
    async with anyio.create_task_group() as tg:
        for part in parts:
            tg.start_soon(_accept_loop, part, handler, gate, tg)


async def _accept_loop(
    listener: Any, handler: Handler, gate: _Gate, tg: anyio.abc.TaskGroup
) -> None:
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            kind = "pressure" if exc.errno in _ACCEPT_PRESSURE else "error"
            ERRORS.note(f"{gate.name}: accept failed ({kind})", error=str(exc))
            await anyio.sleep(ACCEPT_BACKOFF_S)
            continue
        if not gate.admit():
            gate.refused += 1
            ERRORS.note(f"{gate.name}: connection refused, over the limit", active=gate.active)
            await _close(stream)
            continue
        tg.start_soon(_connection, stream, handler, gate)


async def _connection(stream: ByteStream, handler: Handler, gate: _Gate) -> None:
    try:
        await handler(stream)
    except (
        anyio.EndOfStream,
        anyio.BrokenResourceError,
        anyio.ClosedResourceError,
        ConnectionError,
        TimeoutError,
    ) as exc:
        ERRORS.note(f"{gate.name}: client went away", error=type(exc).__name__)
    except Exception as exc:  # one connection's failure must never end the listener
        ERRORS.note(f"{gate.name}: connection failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        await _close(stream)
        gate.release()


async def _close(stream: ByteStream) -> None:
    with anyio.CancelScope(shield=True), suppress(Exception):  # a broken socket closes anyway
        await stream.aclose()


async def read_until(stream: ByteStream, end: bytes | tuple[bytes, ...], limits: Limits) -> bytes:
    """Bytes up to and including `end` (or any of several), within the read deadline and
    the size cap."""
    ends = (end,) if isinstance(end, bytes) else end
    data = b""
    with anyio.fail_after(limits.read_timeout_s):
        while not any(e in data for e in ends):
            data += await stream.receive()
            if len(data) > limits.max_request:
                raise RequestTooLarge(f"request over {limits.max_request} bytes")
    return data


async def send(stream: ByteStream, data: bytes, limits: Limits) -> None:
    """Send within the write deadline (a client that never reads must not hold us)."""
    with anyio.fail_after(limits.write_timeout_s):
        await stream.send(data)
