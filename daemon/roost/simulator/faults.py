"""One way to make any simulated cloud misbehave: `fail_next(kind, n, status, body)`.

Every front holds a `Faults` with the kinds of request it knows ("read" is always the
subscription's read: the stream's opening, the long poll, the pull, the poll) and takes
the next fault at that point. A fault answers with `status` and `body` (None: the
front's own error envelope for the status; bytes as they are; anything else as JSON),
or, with the two special statuses, `DROP` (the connection closes without an answer)
and `SILENT` (headers, then nothing: the client's own timeout has to notice). A front
that can applies an `after_apply` fault's write first and only then fails the answer:
a response lost after the cloud acted, as a client sees it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from roost.simulator import http
from roost.simulator.control import arg

DROP = 0
SILENT = -1

Envelope = Callable[[int, str], Any]  # the front's error body for a status and a message


@dataclass(frozen=True)
class Fault:
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    after_apply: bool = False

    def answer(self, envelope: Envelope) -> http.Answer:
        if self.status == DROP:
            return http.Hangup()
        if self.status == SILENT:
            return http.StreamingResponse(200, _silence(), dict(self.headers))
        body = self.body
        if body is None:
            body = envelope(self.status, f"injected HTTP {self.status}")
        elif isinstance(body, str):
            body = body.encode()
        return http.Response(self.status, body, dict(self.headers))


class Injected(Exception):
    """Raised where a fault is due; the front (or the HTTP server) answers with `answer`."""

    def __init__(self, answer: http.Answer) -> None:
        super().__init__("injected fault")
        self.answer = answer


class Faults:
    def __init__(self, kinds: Iterable[str], *, after_apply: Iterable[str] = ()) -> None:
        self._queues: dict[str, deque[Fault]] = {kind: deque() for kind in kinds}
        self._after_apply = frozenset(after_apply)  # the kinds that can fail after acting

    def fail_next(
        self,
        kind: str,
        n: int = 1,
        status: int = 503,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        after_apply: bool = False,
    ) -> None:
        """Answer the next `n` requests of `kind` with this fault instead."""
        if kind not in self._queues:
            raise ValueError(f"no fault kind {kind!r} here (known: {', '.join(self._queues)})")
        if after_apply and kind not in self._after_apply:
            raise ValueError(f"this front cannot fail {kind!r} after applying it")
        fault = Fault(status, body, headers or {}, after_apply)
        self._queues[kind].extend(fault for _ in range(n))

    def take(self, kind: str) -> Fault | None:
        queue = self._queues[kind]
        return queue.popleft() if queue else None

    def check(self, kind: str, envelope: Envelope) -> None:
        """Raise `Injected` if a fault of `kind` is due."""
        fault = self.take(kind)
        if fault is not None:
            raise Injected(fault.answer(envelope))


async def _silence() -> AsyncIterator[bytes]:
    await anyio.sleep_forever()
    yield b""  # pragma: no cover - never reached


def fail_next_command(front: Any, args: dict[str, Any]) -> None:
    """The `fail_next` control command every front offers, over its control socket."""
    front.fail_next(
        arg(args, "kind", str),
        arg(args, "n", int),
        arg(args, "status", int),
        args.get("body"),
        args.get("headers"),
        bool(args.get("after_apply", False)),
    )
