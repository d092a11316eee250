"""Admission and run modes: whether a triggered rule runs now, later, or not at all.

Each trigger goes through admission (own echo, loop cut, alarm, debounce, cooldown, rate
limit, condition, run mode), and every refusal is traced with its reason. An alarm (a smoke
or CO level change) passes debounce, cooldown, rate limit and run-mode waiting: limits are
for comfort, not for safety. An admitted run starts inline when the engine is handling
events (see `runner`), else in a task of its own.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from anyio.abc import TaskGroup

from roost.core.clock import Clock
from roost.core.codec import event_to_json
from roost.core.events import CoAlarm, Event, SmokeAlarm
from roost.core.redact import redact_text
from roost.core.timers import TimerKind, TimerRecord, Timers
from roost.engine.rule_home import RuleHome, Services
from roost.engine.runner import Run
from roost.engine.traces import Result, Trace, begun
from roost.engine.windows import Window
from roost.notify.alarms import is_alarm
from roost.rules.author import Rule, RunMode
from roost.rules.conditions import as_condition

log = structlog.get_logger(__name__)

# Read once: an enum member read through its class is a metaclass lookup (~0.1 µs), and
# these are read on every run.
_RUNNING = Result.RUNNING
_ALARM_EVENTS = (SmokeAlarm, CoAlarm)  # what `is_alarm` takes (a level change of either)


@dataclass
class RuleStats:
    fired: int = 0
    skipped_cooldown: int = 0
    skipped_condition: int = 0
    skipped_echo: int = 0
    skipped_rate: int = 0
    skipped_mode: int = 0
    loop_cuts: int = 0
    errors: int = 0
    timeouts: int = 0
    blocked_loop: int = 0
    stopped: int = 0  # runs stopped: blocked past the budget, or too many commands


@dataclass(frozen=True)
class LoopLimits:
    """Loop protection: a causation chain deeper than `max_depth` rule hops is cut, and so
    is a rule re-fired by command echoes more than `echo_runs` times in `echo_window_s`."""

    max_depth: int = 8
    echo_runs: int = 10
    echo_window_s: float = 60.0


@dataclass
class RuleState:
    """What a rule remembers between events; kept across a reload of an unchanged file."""

    last_run: datetime | None = None
    rate: Window | None = None
    echoes: Window | None = None
    armed: dict[str, bool] = field(default_factory=dict)  # threshold crossings, per subject
    running: list[Run] = field(default_factory=list)
    queue: deque[tuple[Event, Trace]] = field(default_factory=deque)
    pending: dict[str, Trace] = field(default_factory=dict)  # timer id → its trace
    # The rule's latest traces: its own in the engine's `TraceStore` (`TraceStore.of`),
    # set when the engine takes the rule on.
    traces: deque[Trace] = field(default_factory=deque)


class Admission:
    """The engine's admission side (a part of `Engine`; the fields are the engine's)."""

    services: Services
    clock: Clock
    loop: LoopLimits
    timeout_s: float
    block_budget_s: float
    max_commands: int
    timers: Timers
    stats: dict[str, RuleStats]
    _states: dict[str, RuleState]
    _chains: dict[str, tuple[str, ...]]
    _tg: TaskGroup | None
    _ready: deque[Run]  # admitted, not yet started
    _inline: bool

    if TYPE_CHECKING:

        def _trace(
            self, r: Rule, label: str, event: Event, now: datetime | None = None
        ) -> Trace: ...

        def _remember_chain(self, event: Event, rule: str) -> None: ...

        async def run_rule(self, name: str, event: Event, caller: str) -> bool: ...

        def keep_delay(self, home: RuleHome, seconds: float, resume_at: int) -> str: ...

        def forget_delay(self, delay_id: str) -> None: ...

        async def _execute(self, run: Run) -> None: ...

        def _report_blocked(self, r: Rule, trace: Trace, seconds: float) -> None: ...

    def _triggered(
        self, r: Rule, event: Event, label: str, trace: Trace | None = None, debounced: bool = False
    ) -> bool:
        """A trigger of `r` fired. Decide whether it runs, trace the answer either way."""
        state = self._states[r.name]
        now = self.clock.now()
        ctx = event.context
        if trace is None:  # `Engine._trace`, inline: into the rule's own traces
            key = ctx.correlation  # the rules that ran before in its causation chain
            trace = begun(r.name, label, now, event, self._chains.get(key, ()) if key else ())
            state.traces.append(trace)
        else:
            trace.end(Result.RUNNING)
        if ctx.rule == r.name and not r.react_to_own_echo:
            self.stats[r.name].skipped_echo += 1
            return self._skip(trace, "the event is the echo of this rule's own command", now)
        if ctx.causation is not None or ctx.depth >= self.loop.max_depth:  # else no cut
            cut = self._loop_cut(r, event, state, now)
            if cut:
                self.stats[r.name].loop_cuts += 1
                log.warning("rule loop cut", rule=r.name, reason=cut, rules=list(trace.chain))
                return self._skip(trace, f"loop cut: {cut}", now)
        if isinstance(event, _ALARM_EVENTS) and is_alarm(event):  # no call for the rest
            return self._start_alarm(r, event, trace, state)
        if r.debounce_s and not debounced:
            self._debounce(r, event, label, trace, state, now)
            return False
        if r.cooldown_s and state.last_run is not None:
            left = r.cooldown_s - (now - state.last_run).total_seconds()
            if left > 0:
                self.stats[r.name].skipped_cooldown += 1
                return self._skip(trace, f"cooldown: {left:.0f}s left", now)
        if r.rate is not None and self._rate(r, state).full(now):
            self.stats[r.name].skipped_rate += 1
            count, window = r.rate
            return self._skip(trace, f"rate limit: {count} runs per {window:g}s reached", now)
        run = None
        condition = r.condition
        if condition is not None:  # `_condition`, inline
            # `load` made it a Condition; a plain predicate set on the rule since is wrapped
            check = getattr(condition, "check", None) or as_condition(condition).check
            run = Run(
                self.services, r, event, trace, self, state, self.block_budget_s, self.max_commands
            )
            try:
                held = check(event, run, trace.conditions)
            except Exception as exc:
                self._condition_raised(r, trace, exc)
                held = False
            if not held:
                self.stats[r.name].skipped_condition += 1
                return self._skip(trace, "condition not met", now)
        if not state.running:  # no run mode holds it back
            self._launch(r, event, trace, state, 0, now, run)
            return True
        return self._start(r, event, trace, state, now, run)

    def _start_alarm(self, r: Rule, event: Event, trace: Trace, state: RuleState) -> bool:
        """A smoke/CO level change: debounce, cooldown, rate limit and run-mode waiting
        are for comfort, so none of them holds this run back (conditions still apply)."""
        run = None
        if r.condition is not None:
            run = self._condition(r, event, trace, state)
            if run is None:
                self.stats[r.name].skipped_condition += 1
                return self._skip(trace, "condition not met")
        if r.mode is RunMode.RESTART:
            for running in state.running:
                running.restart()
        trace.step("alarm", "admitted", "limits and run mode do not hold back an alarm")
        self._launch(r, event, trace, state, run=run)
        return True

    def _skip(self, trace: Trace, reason: str, now: datetime | None = None) -> bool:
        """Trace a trigger that does not run (`now`: this stretch's reading, if taken)."""
        trace.end(Result.SKIPPED, reason, now or self.clock.now())
        return False

    def _loop_cut(self, r: Rule, event: Event, state: RuleState, now: datetime) -> str:
        ctx = event.context
        if ctx.depth >= self.loop.max_depth:
            return f"causation chain of {ctx.depth} rule hops (max {self.loop.max_depth})"
        if ctx.causation is None:
            return ""
        if state.echoes is None:
            state.echoes = Window(self.loop.echo_runs, self.loop.echo_window_s)
        if state.echoes.full(now):
            return (
                f"re-fired by command echoes {self.loop.echo_runs} times "
                f"in {self.loop.echo_window_s:g}s"
            )
        return ""

    def _rate(self, r: Rule, state: RuleState) -> Window:
        assert r.rate is not None
        if state.rate is None or state.rate.limit != r.rate[0]:
            state.rate = Window(r.rate[0], r.rate[1], state.rate.times if state.rate else ())
        return state.rate

    def _condition(self, r: Rule, event: Event, trace: Trace, state: RuleState) -> Run | None:
        """The run whose home the condition was checked with when it holds (it goes on to
        run the body), else None."""
        condition = r.condition
        assert condition is not None
        # `load` made it a Condition; a plain predicate set on the rule since is wrapped here
        check = getattr(condition, "check", None) or as_condition(condition).check
        run = Run(
            self.services, r, event, trace, self, state, self.block_budget_s, self.max_commands
        )
        try:
            return run if check(event, run, trace.conditions) else None
        except Exception as exc:
            self._condition_raised(r, trace, exc)
            return None

    def _condition_raised(self, r: Rule, trace: Trace, exc: Exception) -> None:
        self.stats[r.name].errors += 1
        log.exception("rule condition raised", rule=r.name, source=r.source)
        trace.conditions.append((redact_text(f"raised {type(exc).__name__}: {exc}"), False))

    def _debounce(
        self, r: Rule, event: Event, label: str, trace: Trace, state: RuleState, now: datetime
    ) -> None:
        timer_id = f"debounce:{r.name}"
        superseded = state.pending.pop(timer_id, None)
        if superseded is not None:
            superseded.end(Result.SKIPPED, "debounce: a later trigger replaced it", now)
        due = now + timedelta(seconds=r.debounce_s)
        payload = {"label": label, "event": event_to_json(event)}
        self.timers.add(TimerRecord(timer_id, r.name, TimerKind.DEBOUNCE, due, payload))
        trace.end(Result.PENDING, f"debounce: runs if quiet until {due:%H:%M:%S} UTC")
        state.pending[timer_id] = trace

    # ---- run modes -----------------------------------------------------------------

    def _start(
        self,
        r: Rule,
        event: Event,
        trace: Trace,
        state: RuleState,
        now: datetime,
        run: Run | None = None,
    ) -> bool:
        if state.running:
            if r.mode is RunMode.SINGLE:
                self.stats[r.name].skipped_mode += 1
                return self._skip(trace, "mode single: a run is still going", now)
            if r.mode is RunMode.RESTART:
                for running in state.running:
                    running.restart()
            elif r.mode is RunMode.QUEUED:
                if len(state.running) + len(state.queue) >= r.max_runs:
                    self.stats[r.name].skipped_mode += 1
                    return self._skip(trace, f"mode queued: {r.max_runs} runs already waiting", now)
                trace.end(Result.QUEUED, "waiting for the running one")
                state.queue.append((event, trace))
                return True
            elif len(state.running) >= r.max_runs:
                self.stats[r.name].skipped_mode += 1
                return self._skip(trace, f"mode parallel: {r.max_runs} runs already going", now)
        self._launch(r, event, trace, state, now=now, run=run)
        return True

    def _launch(
        self,
        r: Rule,
        event: Event,
        trace: Trace,
        state: RuleState,
        start: int = 0,
        now: datetime | None = None,
        run: Run | None = None,
    ) -> None:
        """Start an admitted run (`now`: when it was admitted, if that was just now;
        `run`: made when its condition was checked)."""
        if self._tg is None:
            raise RuntimeError("the engine is not running")
        if now is None:
            now = self.clock.now()
        self.stats[r.name].fired += 1
        state.last_run = now
        if r.rate is not None:
            self._rate(r, state).add(now)
        if event.context.causation is not None and state.echoes is not None:
            state.echoes.add(now)
        self._remember_chain(event, r.name)
        if trace.result is not _RUNNING:  # queued or pending until now
            trace.end(_RUNNING)
        if run is None:
            run = Run(
                self.services, r, event, trace, self, state, self.block_budget_s, self.max_commands
            )
        run.start = start
        state.running.append(run)
        if self._inline:  # it starts in this very stretch: admission's reading holds
            run.first_stretch_at = now
            self._ready.append(run)
        else:
            self._tg.start_soon(self._execute, run, name=f"rule {r.name}")
