"""Running an admitted rule run: its body stepped by hand, isolated, traced.

A run's first stretch (its code up to its first real wait) runs inline, in the task that
took the event off the bus, watched by the block watchdog (`isolation.Interrupter`) like
every stretch. A body that returns without waiting (the common case: read the state, queue
a command) costs nothing more: no task, no cancel scope, no deadline timer. A body that does
wait goes on in `_carry_on`, which enters the run's cancel scope (its deadline, and what a
restart cancels) in the task that drives it, and watches each later stretch the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from datetime import datetime
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
import structlog
from anyio.abc import TaskGroup

from roost.core.clock import Clock, SystemClock
from roost.core.events import Event
from roost.core.redact import redact_text
from roost.engine.isolation import (
    DEFAULT_BLOCK_BUDGET_S,
    DEFAULT_MAX_COMMANDS,
    Interrupter,
    LoopMonitor,
    RuleBlocked,
    RuleStopped,
    RunDeadline,
    Steppable,
    first_stretch,
    guarded_steps,
)
from roost.engine.rule_home import RuleHome, RuleRunner, Services
from roost.engine.traces import Result, Trace
from roost.notify.alerts import FAILED_RULE_PUSH, alarm_push
from roost.rules.author import Rule

if TYPE_CHECKING:
    from roost.engine.admission import RuleState, RuleStats

ALARM_PUSH_GRACE_S = 1.0  # see Runner._alarm_unsent
log = structlog.get_logger(__name__)

_RAN = Result.RAN  # read once: an enum member read through its class is a metaclass lookup
_UNSTEPPED: Any = object()  # `_carry_on`: a body that is not a coroutine, not stepped

RunBody = Coroutine[Any, Any, None]


class BlockReporter(Protocol):
    def _report_blocked(self, r: Rule, trace: Trace, seconds: float) -> None: ...


class RunOwner(RuleRunner, BlockReporter, Protocol):
    """The engine, as its runs see it."""

    timeout_s: float  # a run's, unless its rule has its own


class Run(RuleHome):
    """One admitted run of a rule: the home its condition and body get (one object per
    run), its trace, and its isolation (a home is its run's `RunGuard`: block budget,
    command count). Its deadline is made when first needed and its cancel scope when it
    first waits: a run that never waits has neither. `first_stretch_at` is the wall-clock
    reading its first stretch shares (see `core.clock`), None once it has waited. `state`
    is its rule's, and `start` the step it starts at (a TOML rule resumed after a delay)."""

    __slots__ = (
        "_deadline",
        "definition",
        "restarted",
        "scope",
        "start",
        "started",
        "state",
        "timed_out",
        "watchdog",
    )

    _runner: RunOwner
    trace: Trace
    start: int
    watchdog: anyio.CancelScope | None

    def __init__(
        self,
        services: Services,
        definition: Rule,
        event: Event,
        trace: Trace,
        runner: RunOwner,
        state: RuleState,
        budget_s: float = DEFAULT_BLOCK_BUDGET_S,
        max_commands: int = DEFAULT_MAX_COMMANDS,
    ) -> None:
        # `RuleHome.__init__` and `RunGuard.__init__`, inline (one per run)
        self._services = services
        self.rule = definition.name
        self.event = event
        self._dry_run = definition.dry_run
        self.trace = trace
        self._runner = runner
        self.first_stretch_at = None  # set when it is about to start
        self.budget_s = budget_s
        self.max_commands = max_commands
        self.commands = 0
        self.roost = 0
        self.deferred = False
        self.interrupted = False
        self.definition = definition
        self.state = state
        # `start` is set when it is launched, `watchdog` (the deadline on a virtual clock)
        # when it first waits (`Run.waits`): most runs never wait.
        self.started = 0.0  # on the clock's monotonic time, set when the run starts
        self._deadline: RunDeadline | None = None
        self.scope = None  # made when it first waits
        self.timed_out = False  # its watchdog cancelled it (read for any TimeoutError)
        self.restarted = False  # a newer trigger of a restart-mode rule cancelled it

    def timeout(self) -> float:
        """Its rule's timeout, else the engine's (read when needed: most runs never wait)."""
        seconds = self.definition.timeout_s
        return seconds if seconds is not None else self._runner.timeout_s

    def deadline(self) -> RunDeadline:
        """When the run times out: `timeout()` after it started, plus its delays."""
        if self._deadline is None:
            clock = self._services.clock
            self._deadline = RunDeadline(clock, self.timeout(), self.started)
        return self._deadline

    def waits(self) -> anyio.CancelScope:
        """It goes on past its first stretch: its cancel scope, made now."""
        self.scope = scope = anyio.CancelScope()
        self.watchdog = None
        return scope

    def restart(self) -> None:
        """A newer trigger replaces this run (restart mode)."""
        self.restarted = True
        if self.scope is not None:
            self.scope.cancel()

    def slow(self, seconds: float) -> None:
        """A stretch of the run held the event loop `seconds`: reported and traced."""
        self._runner._report_blocked(self.definition, self.trace, seconds)


class Runner:
    """The engine's running side (a part of `Engine`; the fields are the engine's)."""

    services: Services
    clock: Clock
    timeout_s: float
    blocking_s: float
    block_budget_s: float
    max_commands: int
    wall_timeout: bool
    monitor: LoopMonitor | None
    stats: dict[str, RuleStats]
    runaways: list[tuple[str, str]]
    _tg: TaskGroup | None
    _interrupter: Interrupter | None

    if TYPE_CHECKING:

        def _launch(
            self,
            r: Rule,
            event: Event,
            trace: Trace,
            state: RuleState,
            start: int = 0,
            now: datetime | None = None,
            run: Run | None = None,
        ) -> None: ...

        async def run_rule(self, name: str, event: Event, caller: str) -> bool: ...

        def keep_delay(self, home: RuleHome, seconds: float, resume_at: int) -> str: ...

        def forget_delay(self, delay_id: str) -> None: ...

    async def _execute(self, run: Run) -> None:
        """A run in a task of its own (started while no events were being handled inline)."""
        run.first_stretch_at = self.clock.now()  # admitted in an earlier stretch
        rest = self._begin(run)
        if rest is not None:
            await rest

    def _begin(self, run: Run) -> RunBody | None:
        """Run the first stretch inline. None when the run is over; else what carries it
        on, to be driven by the calling task (its cancel scope is entered there)."""
        r, event, state = run.definition, run.event, run.state
        run.started = self.clock.monotonic()
        try:
            start = run.start
            body = r.body(event, run) if start == 0 else _resumed(r, event, run, start)
            if not isinstance(body, CoroutineType):
                run.first_stretch_at = None
                return self._carry_on(r, event, run, state, body, _UNSTEPPED)
            rest, waits_for = first_stretch(body, run, self._interrupter, self.blocking_s)
        except (Exception, RuleStopped) as exc:
            self._ended(r, event, run, exc)
            self._release(r, run, state)
            return None
        except BaseException:
            self._release(r, run, state)
            raise
        if rest is not None:
            run.first_stretch_at = None  # it waits: later readings are fresh
            return self._carry_on(r, event, run, state, rest, waits_for)
        if run.restarted:
            self._ended(r, event, run, None)
        else:  # `_ended`'s common case, and `trace.end`, inline: it ran
            trace = run.trace
            finished = run.first_stretch_at or self.clock.now()
            trace.result, trace.reason, trace.finished_at = _RAN, "", finished
        state.running.remove(run)  # `_release`, inline
        if state.queue:
            self._release_queued(r, state)
        return None

    async def _carry_on(
        self,
        r: Rule,
        event: Event,
        run: Run,
        state: RuleState,
        body: Awaitable[None] | Steppable,
        waits_for: Any,
    ) -> None:
        """The rest of a run that waits (`body`: what runs it, and `waits_for` what its
        first stretch waits on; `_UNSTEPPED` for a body that is not a coroutine, awaited as
        it is): in its cancel scope, each stretch watched. A cancellation from outside (the
        engine stops) goes on up untraced, as it came."""
        scope = run.waits()
        if run.restarted:
            scope.cancel()
        try:
            error: BaseException | None = None
            try:
                deadline = run.deadline()
                if isinstance(self.clock, SystemClock) or self.wall_timeout:
                    scope.deadline = anyio.current_time() + deadline.left()
                    deadline.scope = scope
                if not isinstance(self.clock, SystemClock):
                    self._watch(deadline, run)
                with scope:
                    if waits_for is _UNSTEPPED:
                        await cast(Awaitable[None], body)
                    else:
                        await guarded_steps(
                            cast(Steppable, body),
                            run,
                            self._interrupter,
                            self.blocking_s,
                            run.slow,
                            waits_for,
                        )
                if run.watchdog is not None:
                    run.watchdog.cancel()
                if not run.restarted and (run.timed_out or scope.cancelled_caught):
                    error = TimeoutError()
            except (Exception, RuleStopped) as exc:
                error = exc
            self._ended(r, event, run, error)
        finally:
            if run.watchdog is not None:
                run.watchdog.cancel()
            self._release(r, run, state)

    def _ended(self, r: Rule, event: Event, run: Run, error: BaseException | None) -> None:
        """Trace how the run ended (and count and log what went wrong)."""
        trace = run.trace
        at = run.first_stretch_at or self.clock.now()
        if error is None:
            if run.restarted:
                trace.end(Result.CANCELLED, "restarted by a newer trigger", at)
            else:
                trace.end(Result.RAN, "", at)
        elif isinstance(error, TimeoutError):
            timeout = run.timeout()
            self.stats[r.name].timeouts += 1
            log.error("rule timed out", rule=r.name, source=r.source, timeout_s=timeout)
            trace.end(Result.TIMED_OUT, f"timed out after {timeout:g}s", at)
            if not run.timed_out and not isinstance(self.clock, SystemClock):
                self.runaways.append((r.name, f"ran {timeout:g}s of real time"))
        elif isinstance(error, RuleStopped):
            self._stopped(r, trace, error, at)
        else:
            self.stats[r.name].errors += 1
            log.error(
                "rule raised",
                rule=r.name,
                source=r.source,
                trigger=event.name,
                exc_info=error,
            )
            message = redact_text(f"{type(error).__name__}: {error}")
            trace.end(Result.FAILED, message, at)
        if error is not None:
            self._alarm_unsent(r, event, trace)

    def _alarm_unsent(self, r: Rule, event: Event, trace: Trace) -> None:
        """A run for a smoke/CO alarm failed and no run queued a push for it: roost sends
        one itself (alarm notifications fail open). One per alarm, however many rules fail."""
        if self._tg is None or event.id in self.services.alarms_pushed:
            return
        why = (
            f"Your rule {r.name!r} that reacts to it failed before it sent its push "
            f"({trace.result}: see roost's log), so roost sends this itself."
        )
        push = alarm_push(event, why, f"{FAILED_RULE_PUSH}{event.id}")
        if push is None:
            return
        services = self.services

        async def send() -> None:
            # The event's other runs get a moment: one of them may push it yet.
            await services.clock.sleep(ALARM_PUSH_GRACE_S)
            if event.id not in services.alarms_pushed:
                await services.notify(push)

        self._tg.start_soon(send, name="alarm push of a failed rule")

    def _release(self, r: Rule, run: Run, state: RuleState) -> None:
        """The run is over: the next queued one (queued mode) starts."""
        state.running.remove(run)
        if state.queue:
            self._release_queued(r, state)

    def _release_queued(self, r: Rule, state: RuleState) -> None:
        if self._tg is not None:
            queued_event, queued_trace = state.queue.popleft()
            self._launch(r, queued_event, queued_trace, state)

    def _stopped(self, r: Rule, trace: Trace, stop: RuleStopped, at: datetime) -> None:
        """The run was stopped from inside: blocked past its budget, or a runaway."""
        self.stats[r.name].stopped += 1
        self.runaways.append((r.name, str(stop)))
        blocked = isinstance(stop, RuleBlocked)
        if blocked and self.monitor is not None:
            self.monitor.blocked_by(r.name)
        log.error(
            "rule stopped: it blocked the event loop (use await, or home.run_sync)"
            if blocked
            else "rule stopped: too many commands in one run",
            rule=r.name,
            source=r.source,
            reason=str(stop),
        )
        result = Result.BLOCKED if blocked else Result.STOPPED
        trace.end(result, str(stop), at)

    def _watch(self, deadline: RunDeadline, run: Run) -> None:
        """The timeout of a run on a virtual clock (tests, replay): a watchdog task."""
        assert self._tg is not None
        assert run.scope is not None
        run.watchdog = watchdog = anyio.CancelScope()
        scope = run.scope

        async def watch() -> None:
            with watchdog:
                while deadline.left() > 0:
                    await self.clock.sleep(deadline.left())
                run.timed_out = True
                scope.cancel()

        self._tg.start_soon(watch, name="rule watchdog")

    def _report_blocked(self, r: Rule, trace: Trace, seconds: float) -> None:
        self.stats[r.name].blocked_loop += 1
        if self.monitor is not None:
            self.monitor.blocked_by(r.name)
        log.warning(
            "rule blocked the event loop (use await, or home.run_sync for blocking code)",
            rule=r.name,
            source=r.source,
            blocked_s=round(seconds, 3),
        )
        trace.step("blocked the event loop", "warning", f"{seconds:.2f}s without an await")


async def _resumed(r: Rule, event: Event, home: RuleHome, start: int) -> None:
    assert r.resume is not None
    await r.resume(event, home, start)
