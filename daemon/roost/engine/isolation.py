"""Stopping rule code that blocks the event loop, or runs away.

A rule that calls `time.sleep`, spins in a loop or waits on a blocking socket between two
awaits stalls every other rule, the bus and the notifier: an alarm push would wait for it.
Rule bodies stay inline on the loop (a thread hop per run costs more than the run), and
each step of a rule's coroutine (the code between two awaits) is a "stretch" that the
`Interrupter` watches from a thread: a stretch longer than the block budget gets a signal
sent to the main thread, whose handler raises `RuleBlocked` inside the rule's code. Signal
handlers run between bytecodes and interrupt blocking system calls (PEP 475 then raises
the handler's exception), so this ends `time.sleep`, Python loops and blocking socket
reads; a single long C call (a huge regex, one giant integer) ends only when it returns.
While roost's own code runs inside a stretch (a command being queued, a notification
being written), the stop waits for it to return to the rule's code, so no roost state is
left half-done. The rule can catch neither stop with `except Exception`.

A run is also stopped after `max_commands` commands (`TooManyCommands`): a `while True:
set_heat(...)` rule. `LoopMonitor` watches the loop itself, so a stall from anywhere (not
only a rule) is seen, and names the last rule that blocked.
"""

from __future__ import annotations

import signal
import threading
import time
import types
from collections.abc import Callable, Coroutine, Generator
from typing import Any, ClassVar

import anyio
import structlog

from roost.core.clock import Clock

log = structlog.get_logger(__name__)


INTERRUPT_SIGNAL = signal.SIGUSR2
DEFAULT_BLOCK_BUDGET_S = 0.5
DEFAULT_MAX_COMMANDS = 50


class RuleStopped(BaseException):
    """Ends a rule run from inside it. A BaseException, so `except Exception` in a rule
    does not swallow it."""

    result: ClassVar[str] = "stopped"


class RuleBlocked(RuleStopped):
    result: ClassVar[str] = "blocked"


class TooManyCommands(RuleStopped):
    result: ClassVar[str] = "stopped"


class RunGuard:
    """One run's side of the isolation: its block budget, its command count, and whether
    roost's own code is running inside it (then a stop waits for the rule's code)."""

    __slots__ = ("budget_s", "commands", "deferred", "interrupted", "max_commands", "roost")

    def __init__(
        self,
        budget_s: float = DEFAULT_BLOCK_BUDGET_S,
        max_commands: int = DEFAULT_MAX_COMMANDS,
    ) -> None:
        self.budget_s = budget_s
        self.max_commands = max_commands
        self.commands = 0
        self.roost = 0  # depth of roost code (API calls) running inside the rule
        self.deferred = False  # a stop arrived while roost code ran
        self.interrupted = False  # RuleBlocked was raised in this run

    def count_command(self) -> None:
        """Count one command; TooManyCommands past the cap (that one is not sent)."""
        self.commands += 1
        if self.commands > self.max_commands:
            raise TooManyCommands(f"more than {self.max_commands} commands in one run")

    def slow(self, seconds: float) -> None:
        """A stretch held the event loop `seconds` (past the reporting threshold): what
        `_stretch` reports it to when it is given no `on_slow` (a run reports and traces
        it; a bare guard has no one to tell)."""

    def blocked(self) -> RuleBlocked:
        self.interrupted = True
        return RuleBlocked(f"held the event loop longer than {self.budget_s:g}s")

    def __enter__(self) -> RunGuard:
        self.roost += 1
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self.roost -= 1
        if self.roost == 0 and self.deferred:
            self.deferred = False
            if kind is None:  # back to the rule's code: stop it now
                raise self.blocked()


class Interrupter:
    """The process-wide watcher of rule stretches (signals reach only the main thread).

    `stretch` is the (guard, start) of the rule code running now, or None; it is one
    attribute so the thread reads it atomically. The thread marks the stretch it found
    over budget as its target before signalling; the handler acts only if that very
    stretch is still running, so a signal that arrives late (the stretch ended, another
    began) does nothing. A stretch that catches the stop is signalled again every tick.
    """

    def __init__(self) -> None:
        self.stretch: tuple[RunGuard, float] | None = None
        self._target: tuple[RunGuard, float] | None = None
        self._users = 0
        self._tick_s = DEFAULT_BLOCK_BUDGET_S / 4
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: Any = None
        self.signals = 0

    def acquire(self, budget_s: float) -> bool:
        """Start watching (first user). False when not on the main thread: then blocking
        code is only reported, not stopped."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self._tick_s = min(self._tick_s, budget_s / 4) if self._users else budget_s / 4
        self._users += 1
        if self._users == 1:
            self._previous = signal.signal(INTERRUPT_SIGNAL, self._handle)
            self._stop.clear()
            self._thread = threading.Thread(target=self._watch, name="roost rule watchdog")
            self._thread.daemon = True
            self._thread.start()
        return True

    def release(self) -> None:
        """Stop watching (last user): the thread ends, the previous handler is back."""
        self._users -= 1
        if self._users > 0:
            return
        self.stretch = self._target = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        signal.signal(INTERRUPT_SIGNAL, self._previous or signal.SIG_DFL)

    def _handle(self, signum: int, frame: object) -> None:
        stretch = self.stretch
        if stretch is None or stretch is not self._target:
            return  # late: that stretch is over
        self._target = None
        guard = stretch[0]
        if guard.roost:
            guard.deferred = True  # roost's own code first; the guard raises on its way out
            return
        raise guard.blocked()

    def _watch(self) -> None:
        main = threading.main_thread().ident
        assert main is not None
        while not self._stop.wait(self._tick_s):
            stretch = self.stretch
            if stretch is None or time.perf_counter() - stretch[1] < stretch[0].budget_s:
                continue
            self._target = stretch
            self.signals += 1
            signal.pthread_kill(main, INTERRUPT_SIGNAL)


INTERRUPTER = Interrupter()


_START: Any = object()  # guarded_steps: no stretch has run yet
_RETURNED: Any = object()  # what a stepper yields when the coroutine it runs has returned

# A coroutine or a stepper running one: both are stepped with send, throw and close.
Steppable = Coroutine[Any, Any, Any] | Generator[Any, Any, Any]


@types.coroutine
def _stepper() -> Generator[Any, Any, None]:
    """Runs each coroutine sent to it: yields what it waits on, and `_RETURNED` once it
    has returned (then takes the next). A coroutine stepped by hand with `send` raises
    StopIteration when it returns, an exception object and a traceback per rule run;
    through `yield from` it returns as a call does."""
    coro = yield
    while True:
        yield from coro
        coro = yield _RETURNED


_IDLE: list[Generator[Any, Any, None]] = []  # steppers between two first stretches


def _stretch(
    coro: Steppable,
    guard: RunGuard,
    interrupter: Interrupter | None,
    threshold_s: float,
    on_slow: Callable[[float], None] | None,
    value: Any = None,
    error: BaseException | None = None,
) -> tuple[bool, Any]:
    """One stretch of `coro` (the code between two awaits), watched by `interrupter` (None:
    only timed); one that held the loop longer than `threshold_s` is reported to `on_slow`
    (None: to `guard.slow`)."""
    started = time.perf_counter()
    result = None
    try:
        try:
            if interrupter is not None:
                interrupter.stretch = (guard, started)
            yielded = coro.throw(error) if error is not None else coro.send(value)
        finally:
            if interrupter is not None:
                interrupter.stretch = None
    except StopIteration as stop:
        yielded, result = _RETURNED, stop.value
    except RuleStopped:
        if interrupter is not None:
            interrupter.stretch = None
        _check(started, threshold_s, on_slow or guard.slow)
        coro.close()
        raise
    except BaseException:
        _check(started, threshold_s, on_slow or guard.slow)
        raise
    elapsed = time.perf_counter() - started  # `_check`, inline: every run ends here
    if elapsed > threshold_s:
        (on_slow or guard.slow)(elapsed)
    if yielded is _RETURNED:
        if guard.interrupted:  # it caught the stop and went on: still stopped
            raise RuleBlocked("caught the stop and went on")
        return True, result
    guard.deferred = False  # it awaited: the loop has it back
    if guard.interrupted:
        coro.close()
        raise RuleBlocked("caught the stop and went on")
    return False, yielded


def first_stretch(
    coro: Coroutine[Any, Any, Any],
    guard: RunGuard,
    interrupter: Interrupter | None,
    threshold_s: float,
    on_slow: Callable[[float], None] | None = None,
) -> tuple[Generator[Any, Any, None] | None, Any]:
    """Run `coro` up to its first wait, watched (see `_stretch`): (None, None) if it
    returned; else (what runs the rest of it, what it waits on), to hand to
    `guarded_steps` in the task that goes on."""
    stepper = _IDLE.pop() if _IDLE else _new_stepper()
    done, waits_for = _stretch(stepper, guard, interrupter, threshold_s, on_slow, coro)
    if done:
        _IDLE.append(stepper)
        return None, None
    return stepper, waits_for  # it stays with this run


def _new_stepper() -> Generator[Any, Any, None]:
    stepper = _stepper()
    stepper.send(None)  # to its first `yield`, ready for a coroutine
    return stepper


@types.coroutine
def guarded_steps(
    coro: Steppable,
    guard: RunGuard,
    interrupter: Interrupter | None,
    threshold_s: float,
    on_slow: Callable[[float], None],
    waiting: Any = _START,
) -> Generator[Any, Any, Any]:
    """Drive `coro` one watched stretch at a time (see `_stretch`). `waiting`: its first
    stretch already ran (`first_stretch`) and it waits on this."""
    if waiting is _START:
        done, waiting = _stretch(coro, guard, interrupter, threshold_s, on_slow, None, None)
        if done:
            return waiting
    while True:
        value: Any = None
        error: BaseException | None = None
        try:
            value = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and the like go to the rule's code
            error = exc
        done, waiting = _stretch(coro, guard, interrupter, threshold_s, on_slow, value, error)
        if done:
            return waiting


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

    def __init__(self, clock: Clock, seconds: float, start: float | None = None) -> None:
        self.clock = clock
        self.at = (clock.monotonic() if start is None else start) + seconds
        self.scope: anyio.CancelScope | None = None  # fail_after's scope, on the system clock

    def extend(self, seconds: float) -> None:
        self.at += seconds
        if self.scope is not None:
            self.scope.deadline += seconds

    def left(self) -> float:
        return self.at - self.clock.monotonic()
