"""Catching rule code that blocks the event loop.

A rule that calls `time.sleep` or does heavy work between two awaits stalls every other
rule and the bus, and nothing in the loop can preempt it. What we can do is notice: each
step of a rule's coroutine (the code between two awaits) is timed, and a step longer than
the threshold is reported with the rule's name. `LoopMonitor` watches the loop itself, so a
stall from anywhere (not only a rule) is seen, and names the last rule that blocked.
"""

from __future__ import annotations

import time
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import anyio
import structlog

from roost.clock import Clock

log = structlog.get_logger(__name__)


@types.coroutine
def timed_steps(
    coro: Coroutine[Any, Any, Any], threshold_s: float, on_slow: Callable[[float], None]
) -> Generator[Any, Any, Any]:
    """Drive `coro`, calling `on_slow(seconds)` for each step that held the loop too long."""
    value: Any = None
    error: BaseException | None = None
    while True:
        started = time.perf_counter()
        try:
            yielded = coro.throw(error) if error is not None else coro.send(value)
        except StopIteration as stop:
            _check(started, threshold_s, on_slow)
            return stop.value
        except BaseException:
            _check(started, threshold_s, on_slow)
            raise
        _check(started, threshold_s, on_slow)
        value, error = None, None
        try:
            value = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and the like go to the rule's code
            error = exc


@types.coroutine
def resume(coro: Coroutine[Any, Any, Any], waits_for: Any) -> Generator[Any, Any, Any]:
    """Go on driving `coro`, which was stepped by hand and yielded `waits_for` (what it
    waits on) to the event loop: awaiting this in a task hands both to that task."""
    yielded = waits_for
    while True:
        try:
            value = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and the like go to the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            yielded = coro.send(value)
        except StopIteration as stop:
            return stop.value


def _check(started: float, threshold_s: float, on_slow: Callable[[float], None]) -> None:
    elapsed = time.perf_counter() - started
    if elapsed > threshold_s:
        on_slow(elapsed)


class LoopMonitor:
    """Reports when the event loop was stalled for longer than `threshold_s`."""

    def __init__(self, threshold_s: float = 1.0, every_s: float = 0.25) -> None:
        self.threshold_s = threshold_s
        self.every_s = every_s
        self.stalls = 0
        self.last_blocking_rule: str | None = None

    def blocked_by(self, rule: str) -> None:
        self.last_blocking_rule = rule

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            await anyio.sleep(self.every_s)
            lag = time.monotonic() - started - self.every_s
            if lag > self.threshold_s:
                self.stalls += 1
                log.warning(
                    "event loop stalled",
                    lag_s=round(lag, 3),
                    last_blocking_rule=self.last_blocking_rule,
                )


class RunDeadline:
    """When a rule run times out, on the engine's clock. Time spent in `home.delay()` is
    added to it: a delay is the rule's intent, not a hang."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock = clock
        self.at = clock.monotonic() + seconds
        self.scope: anyio.CancelScope | None = None  # fail_after's scope, on the system clock

    def extend(self, seconds: float) -> None:
        self.at += seconds
        if self.scope is not None:
            self.scope.deadline += seconds

    def left(self) -> float:
        return self.at - self.clock.monotonic()
