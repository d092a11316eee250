"""The rule engine: trigger index, holds and schedules, admission, run modes, traces.

Matching is synchronous and cheap: rules are indexed by event name and by device, so an
event only meets the triggers that could match it, and nothing is allocated for the rules
it does not match. A matching trigger goes through admission (own echo, loop cut,
debounce, cooldown, rate limit, condition, run mode), each refusal is traced, and an
admitted run is its own task with a timeout: an exception, a hang or a blocking call is
reported with the rule's name and never stalls the bus or the other rules.

A run starts inline, in the task that takes events off the bus, so a body that never has
to wait (the common case: read the state, queue a command) costs no task of its own. When
a body does wait, that task stays with the run and a new one takes over the bus.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from roost.core.clock import Clock, SystemClock
from roost.core.codec import event_from_json, event_to_json
from roost.core.events import Event, Scheduled, Started
from roost.core.ids import new_id
from roost.core.redact import redact_text
from roost.core.timers import TimerKind, TimerPersistence, TimerRecord, Timers
from roost.engine.isolation import (
    DEFAULT_BLOCK_BUDGET_S,
    DEFAULT_MAX_COMMANDS,
    INTERRUPTER,
    Interrupter,
    LoopMonitor,
    RuleBlocked,
    RuleStopped,
    RunDeadline,
    RunGuard,
    guarded_steps,
    resume,
)
from roost.engine.rule_home import RuleHome, Services
from roost.engine.traces import DEFAULT_PER_RULE, Result, Trace, TraceStore
from roost.engine.windows import Window
from roost.notify.alarms import is_alarm
from roost.rules.author import Rule, RunMode
from roost.rules.conditions import as_condition
from roost.rules.schedule import next_interval
from roost.rules.sun import next_due
from roost.rules.triggers import Cron, Every, Trigger

log = structlog.get_logger(__name__)

_ANY_DEVICE = ""
_CHAINS_KEPT = 512
_CHAIN_MAX = 32
NOTIFY_STATE_KEY = "@notifications"


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


@dataclass(slots=True)
class _Run:
    trace: Trace
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)  # also the deadline
    watchdog: anyio.CancelScope | None = None  # the deadline on a virtual clock
    timed_out: bool = False
    restarted: bool = False


@dataclass
class RuleState:
    """What a rule remembers between events; kept across a reload of an unchanged file."""

    last_run: datetime | None = None
    rate: Window | None = None
    echoes: Window | None = None
    armed: dict[str, bool] = field(default_factory=dict)  # threshold crossings, per subject
    running: list[_Run] = field(default_factory=list)
    queue: deque[tuple[Event, Trace]] = field(default_factory=deque)
    pending: dict[str, Trace] = field(default_factory=dict)  # timer id → its trace


@dataclass
class _Entry:
    rule: Rule
    trigger: Trigger
    position: int  # the trigger's index in rule.triggers
    label: str
    stateful: bool  # a threshold or a hold: needs memory, off the fast path


@dataclass
class Engine:
    services: Services
    timeout_s: float = 30.0
    traces_per_rule: int = DEFAULT_PER_RULE
    loop: LoopLimits = field(default_factory=LoopLimits)
    persistence: TimerPersistence | None = None
    grace_s: float = 300.0
    blocking_s: float = 0.25
    block_budget_s: float = DEFAULT_BLOCK_BUDGET_S
    max_commands: int = DEFAULT_MAX_COMMANDS
    stop_blocking: bool = True  # False: blocking rule code is only reported (benchmarks)
    # On a virtual clock (tests), the timeout also holds in real seconds: a rule that
    # never lets virtual time pass cannot hang the test.
    wall_timeout: bool = False
    monitor: LoopMonitor | None = None
    rules: dict[str, Rule] = field(default_factory=dict)
    stats: dict[str, RuleStats] = field(default_factory=dict)
    _index: dict[str, dict[str, list[_Entry]]] = field(default_factory=dict)
    _states: dict[str, RuleState] = field(default_factory=dict)
    _chains: OrderedDict[str, list[str]] = field(default_factory=OrderedDict)
    _tg: TaskGroup | None = None
    # Events taken off the bus and runs admitted, not yet handled/started; `_inline` is
    # True while the bus task works through them (runs admitted then start inline).
    _pending: deque[Event] = field(default_factory=deque)
    _ready: deque[tuple[Rule, Event, _Run, RuleState, int]] = field(default_factory=deque)
    _inline: bool = False
    _interrupter: Interrupter | None = None
    # Runs stopped by the block budget, the command cap or a real-time timeout: (rule, why).
    runaways: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.traces = TraceStore(self.traces_per_rule)
        self.timers = Timers(
            self.services.clock, self._on_due, self._on_missed, self.persistence, self.grace_s
        )

    @property
    def clock(self) -> Clock:
        return self.services.clock

    # ---- the rule set --------------------------------------------------------------

    def load(self, rules: Iterable[Rule]) -> None:
        """Replace the rule set.

        A rule whose file did not change keeps its state (cooldown, rate window, pending
        holds, threshold memory) and its statistics; a changed or removed rule loses its
        pending timers, and its schedules start afresh.
        """
        previous = self.rules
        self.rules = {r.name: r for r in rules}
        for name in previous.keys() - self.rules.keys():
            self._forget(name)
        for name, r in self.rules.items():
            before = previous.get(name)
            if before is not None and not _same(before, r):
                self._forget(name)
            if r.condition is not None:
                r.condition = as_condition(r.condition)
            self.stats.setdefault(name, RuleStats())
            self._states.setdefault(name, RuleState())
        self.stats = {name: self.stats[name] for name in self.rules}
        self._index = _build_index(self.rules.values())
        if self._tg is not None:
            for r in self.rules.values():
                self._arm_schedules(r)

    def _forget(self, name: str) -> None:
        self.timers.cancel_all(t.id for t in self.timers.of_rule(name))
        state = self._states.pop(name, None)
        if state is not None:
            for trace in state.pending.values():
                trace.end(Result.CANCELLED, "the rule was reloaded", self.clock.now())

    # ---- running -------------------------------------------------------------------

    async def run(self, inbox: MemoryObjectReceiveStream[Sequence[Event]]) -> None:
        armed = self.stop_blocking and INTERRUPTER.acquire(self.block_budget_s)
        self._interrupter = INTERRUPTER if armed else None
        try:
            async with inbox, anyio.create_task_group() as tg:
                self._tg = tg
                self.timers.restore(self._still_meant)
                for r in self.rules.values():
                    self._arm_schedules(r)
                tg.start_soon(self.timers.run, name="rule timers")
                self._startup()
                await self._consume(inbox)
        finally:
            if armed:
                INTERRUPTER.release()
            self._interrupter = None
            self._tg = None
            self._inline = False
            self._pending.clear()
            while self._ready:  # admitted, never started: the engine stopped first
                _, _, run, state, _ = self._ready.popleft()
                state.running.remove(run)
                run.trace.end(Result.CANCELLED, "the engine stopped", self.clock.now())

    async def _consume(self, inbox: MemoryObjectReceiveStream[Sequence[Event]]) -> None:
        """Handle events off the bus, starting admitted runs inline. If a run has to wait,
        this task stays with it (so its cancel scopes stay in one task) and a new task
        takes over the bus."""
        pending, ready = self._pending, self._ready
        while True:
            self._inline = True
            while ready or pending:
                if not ready:
                    self.handle(pending.popleft())
                    continue
                run = self._execute(*ready.popleft())
                try:
                    waits_for = run.send(None)
                except StopIteration:
                    # A run publishes (its command's outcome) to this very inbox: keep
                    # room in it, or the next run would wait on the engine itself.
                    _take_waiting(inbox, pending)
                    continue
                self._inline = False
                assert self._tg is not None
                self._tg.start_soon(self._consume, inbox, name="rule engine")
                await resume(run, waits_for)
                return
            self._inline = False
            try:
                pending.extend(await inbox.receive())
            except anyio.EndOfStream:
                return
            _take_waiting(inbox, pending)

    # ---- matching (the hot path) ---------------------------------------------------

    def handle(self, event: Event) -> None:
        by_device = self._index.get(event.name)
        if by_device is None:
            return
        fired: set[str] | None = None
        for entry in self._candidates(event, by_device):
            if entry.stateful:
                if not self._stateful(entry, event):
                    continue
            elif not entry.trigger.matches(event):
                continue
            name = entry.rule.name
            if fired is None:
                fired = {name}
            elif name in fired:
                continue
            else:
                fired.add(name)
            self._triggered(entry.rule, event, entry.label)

    def _candidates(self, event: Event, by_device: dict[str, list[_Entry]]) -> list[_Entry]:
        found = by_device.get(_ANY_DEVICE, [])
        if event.device is None:
            return found
        exact = by_device.get(event.device)
        # Other keys may name this device by its name rather than its id.
        others = len(by_device) - (_ANY_DEVICE in by_device) - (exact is not None)
        device = self.services.state.device(event.device) if others else None
        named = by_device.get(device.name) if device is not None else None
        if exact is None and named is None:
            return found
        return [*found, *(exact or ()), *(named or ())]

    def _stateful(self, entry: _Entry, event: Event) -> bool:
        """Threshold crossings and holds. True when the rule should be triggered now."""
        trigger = entry.trigger
        if not trigger.about(event):
            return False
        inside = trigger.matches(event)
        subject = event.device or event.structure or event.account
        edge = inside
        if trigger.threshold is not None:
            edge = self._crossed(entry, subject, event, inside)
        if not trigger.hold_s:
            return edge
        timer_id = f"hold:{entry.rule.name}:{entry.position}:{subject}"
        if not inside:
            self._cancel_hold(entry.rule.name, timer_id, event)
        elif edge and self.timers.get(timer_id) is None:
            self._start_hold(entry, timer_id, event)
        return False

    def _crossed(self, entry: _Entry, subject: str, event: Event, inside: bool) -> bool:
        threshold = entry.trigger.threshold
        assert threshold is not None
        armed = self._states[entry.rule.name].armed
        key = f"{entry.position}:{subject}"
        was_armed = armed.get(key)
        if was_armed is None:  # first sight: armed unless the old value was already inside
            was_armed = not threshold.inside(getattr(event, "old", None))
        if was_armed and inside:
            armed[key] = False
            return True
        armed[key] = was_armed or threshold.rearms(getattr(event, "new", None))
        return False

    def _start_hold(self, entry: _Entry, timer_id: str, event: Event) -> None:
        due = self.clock.now() + timedelta(seconds=entry.trigger.hold_s)
        payload = {"trigger": entry.position, "label": entry.label, "event": event_to_json(event)}
        self.timers.add(TimerRecord(timer_id, entry.rule.name, TimerKind.HOLD, due, payload))
        trace = self._trace(entry.rule, entry.label, event)
        trace.end(Result.PENDING, f"holding until {due:%H:%M:%S} UTC")
        self._states[entry.rule.name].pending[timer_id] = trace

    def _cancel_hold(self, rule: str, timer_id: str, event: Event) -> None:
        if self.timers.cancel(timer_id) is None:
            return
        trace = self._states[rule].pending.pop(timer_id, None)
        if trace is not None:
            trace.end(Result.SKIPPED, f"hold cancelled: {_describe(event)}", self.clock.now())

    # ---- admission -----------------------------------------------------------------

    def _triggered(
        self, r: Rule, event: Event, label: str, trace: Trace | None = None, debounced: bool = False
    ) -> bool:
        """A trigger of `r` fired. Decide whether it runs, trace the answer either way."""
        stats = self.stats[r.name]
        state = self._states[r.name]
        if trace is None:
            trace = self._trace(r, label, event)
        else:
            trace.end(Result.RUNNING)
        now = self.clock.now()
        if event.context.rule == r.name and not r.react_to_own_echo:
            stats.skipped_echo += 1
            return self._skip(trace, "the event is the echo of this rule's own command")
        cut = self._loop_cut(r, event, state, now)
        if cut:
            stats.loop_cuts += 1
            log.warning("rule loop cut", rule=r.name, reason=cut, rules=list(trace.chain))
            return self._skip(trace, f"loop cut: {cut}")
        if is_alarm(event):
            return self._start_alarm(r, event, trace, state)
        if r.debounce_s and not debounced:
            self._debounce(r, event, label, trace, state, now)
            return False
        if r.cooldown_s and state.last_run is not None:
            left = r.cooldown_s - (now - state.last_run).total_seconds()
            if left > 0:
                stats.skipped_cooldown += 1
                return self._skip(trace, f"cooldown: {left:.0f}s left")
        if r.rate is not None and self._rate(r, state).full(now):
            stats.skipped_rate += 1
            count, window = r.rate
            return self._skip(trace, f"rate limit: {count} runs per {window:g}s reached")
        if r.condition is not None and not self._condition(r, event, trace):
            stats.skipped_condition += 1
            return self._skip(trace, "condition not met")
        return self._start(r, event, trace, state)

    def _start_alarm(self, r: Rule, event: Event, trace: Trace, state: RuleState) -> bool:
        """A smoke/CO level change: debounce, cooldown, rate limit and run-mode waiting
        are for comfort, so none of them holds this run back (conditions still apply)."""
        if r.condition is not None and not self._condition(r, event, trace):
            self.stats[r.name].skipped_condition += 1
            return self._skip(trace, "condition not met")
        if r.mode is RunMode.RESTART:
            for run in state.running:
                run.restarted = True
                run.scope.cancel()
        trace.step("alarm", "admitted", "limits and run mode do not hold back an alarm")
        self._launch(r, event, trace, state)
        return True

    def _skip(self, trace: Trace, reason: str) -> bool:
        trace.end(Result.SKIPPED, reason, self.clock.now())
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

    def _condition(self, r: Rule, event: Event, trace: Trace) -> bool:
        assert r.condition is not None
        home = RuleHome(self.services, r.name, event, r.dry_run, trace, self)
        try:
            return as_condition(r.condition).check(event, home, trace.conditions)
        except Exception as exc:
            self.stats[r.name].errors += 1
            log.exception("rule condition raised", rule=r.name, source=r.source)
            trace.conditions.append((redact_text(f"raised {type(exc).__name__}: {exc}"), False))
            return False

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

    def _start(self, r: Rule, event: Event, trace: Trace, state: RuleState) -> bool:
        if state.running:
            if r.mode is RunMode.SINGLE:
                self.stats[r.name].skipped_mode += 1
                return self._skip(trace, "mode single: a run is still going")
            if r.mode is RunMode.RESTART:
                for run in state.running:
                    run.restarted = True
                    run.scope.cancel()
            elif r.mode is RunMode.QUEUED:
                if len(state.running) + len(state.queue) >= r.max_runs:
                    self.stats[r.name].skipped_mode += 1
                    return self._skip(trace, f"mode queued: {r.max_runs} runs already waiting")
                trace.end(Result.QUEUED, "waiting for the running one")
                state.queue.append((event, trace))
                return True
            elif len(state.running) >= r.max_runs:
                self.stats[r.name].skipped_mode += 1
                return self._skip(trace, f"mode parallel: {r.max_runs} runs already going")
        self._launch(r, event, trace, state)
        return True

    def _launch(
        self, r: Rule, event: Event, trace: Trace, state: RuleState, start: int = 0
    ) -> None:
        if self._tg is None:
            raise RuntimeError("the engine is not running")
        now = self.clock.now()
        self.stats[r.name].fired += 1
        state.last_run = now
        if r.rate is not None:
            self._rate(r, state).add(now)
        if event.context.causation is not None and state.echoes is not None:
            state.echoes.add(now)
        self._remember_chain(event, r.name)
        trace.end(Result.RUNNING)
        run = _Run(trace)
        state.running.append(run)
        if self._inline:
            self._ready.append((r, event, run, state, start))
        else:
            self._tg.start_soon(self._execute, r, event, run, state, start, name=f"rule {r.name}")

    async def _execute(
        self, r: Rule, event: Event, run: _Run, state: RuleState, start: int = 0
    ) -> None:
        """One isolated run of a rule for an event: `run.scope` is its deadline (on the
        system clock) and what a restart cancels."""
        trace = run.trace
        timeout = r.timeout_s if r.timeout_s is not None else self.timeout_s
        deadline = RunDeadline(self.clock, timeout)
        guard = RunGuard(self.block_budget_s, self.max_commands)
        home = RuleHome(self.services, r.name, event, r.dry_run, trace, self, deadline, guard)
        home.run_scope = run.scope
        try:
            if isinstance(self.clock, SystemClock) or self.wall_timeout:
                run.scope.deadline = anyio.current_time() + timeout
                deadline.scope = run.scope
            if not isinstance(self.clock, SystemClock):
                self._watch(deadline, run)
            with run.scope:
                body = r.body(event, home) if start == 0 else _resumed(r, event, home, start)
                if inspect.iscoroutine(body):
                    slow = self._blocked(r, trace)
                    await guarded_steps(body, guard, self._interrupter, self.blocking_s, slow)
                else:
                    await body
            if run.watchdog is not None:
                run.watchdog.cancel()
            if run.restarted and run.scope.cancel_called:
                trace.end(Result.CANCELLED, "restarted by a newer trigger", self.clock.now())
            elif run.timed_out or run.scope.cancelled_caught:
                raise TimeoutError
            else:
                trace.end(Result.RAN, "", self.clock.now())
        except TimeoutError:
            self.stats[r.name].timeouts += 1
            log.error("rule timed out", rule=r.name, source=r.source, timeout_s=timeout)
            trace.end(Result.TIMED_OUT, f"timed out after {timeout:g}s", self.clock.now())
            if not run.timed_out and not isinstance(self.clock, SystemClock):
                self.runaways.append((r.name, f"ran {timeout:g}s of real time"))
        except RuleStopped as stop:
            self._stopped(r, trace, stop)
        except Exception as exc:
            self.stats[r.name].errors += 1
            log.exception("rule raised", rule=r.name, source=r.source, trigger=event.name)
            trace.end(Result.FAILED, redact_text(f"{type(exc).__name__}: {exc}"), self.clock.now())
        finally:
            if run.watchdog is not None:
                run.watchdog.cancel()
            state.running.remove(run)
            if state.queue and self._tg is not None:
                queued_event, queued_trace = state.queue.popleft()
                self._launch(r, queued_event, queued_trace, state)

    def _stopped(self, r: Rule, trace: Trace, stop: RuleStopped) -> None:
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
        trace.end(result, str(stop), self.clock.now())

    def _watch(self, deadline: RunDeadline, run: _Run) -> None:
        """The timeout of a run on a virtual clock (tests, replay): a watchdog task."""
        assert self._tg is not None
        run.watchdog = watchdog = anyio.CancelScope()

        async def watch() -> None:
            with watchdog:
                while deadline.left() > 0:
                    await self.clock.sleep(deadline.left())
                run.timed_out = True
                run.scope.cancel()

        self._tg.start_soon(watch, name="rule watchdog")

    def _blocked(self, r: Rule, trace: Trace) -> Any:
        def report(seconds: float) -> None:
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

        return report

    def keep_delay(self, home: RuleHome, seconds: float) -> str:
        """Store where a TOML run resumes after its delay, in case roost stops meanwhile."""
        assert home.position is not None
        delay_id = f"delay:{home.rule}:{new_id()}"
        due = self.clock.now() + timedelta(seconds=seconds)
        payload = {"event": event_to_json(home.event), "step": home.position + 1}
        self.timers.persistence.save(
            TimerRecord(delay_id, home.rule, TimerKind.DELAY, due, payload)
        )
        return delay_id

    def forget_delay(self, delay_id: str) -> None:
        self.timers.persistence.delete(delay_id)

    async def run_rule(self, name: str, event: Event, caller: str) -> bool:
        """`home.run_rule(name)`: trigger another rule with the caller's event."""
        r = self.rules.get(name)
        if r is None:
            log.warning("run_rule: no such rule", rule=caller, wanted=name)
            return False
        return self._triggered(r, event, f"run by rule {caller}")

    # ---- causation chains ----------------------------------------------------------

    def _remember_chain(self, event: Event, rule: str) -> None:
        key = event.context.correlation or event.id
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = []
            if len(self._chains) > _CHAINS_KEPT:
                self._chains.popitem(last=False)
        if len(chain) < _CHAIN_MAX:
            chain.append(rule)

    def _chain(self, event: Event) -> tuple[str, ...]:
        key = event.context.correlation
        return tuple(self._chains.get(key, ())) if key else ()

    def _trace(self, r: Rule, label: str, event: Event) -> Trace:
        trace = Trace(r.name, label, self.clock.now(), event, self._chain(event))
        self.traces.add(trace)
        return trace

    # ---- timers: holds, debounces, schedules, startup ------------------------------

    def _arm_schedules(self, r: Rule) -> None:
        now = self.clock.now()
        for position, trigger in r.schedules():
            timer_id = f"{'cron' if isinstance(trigger, Cron) else 'every'}:{r.name}:{position}"
            if self.timers.get(timer_id) is not None:
                continue
            if isinstance(trigger, Cron):
                due = next_due(trigger, now, self.services.zone, self.services.locations)
                record = TimerRecord(timer_id, r.name, TimerKind.CRON, due, {"trigger": position})
            else:
                due = now + timedelta(seconds=trigger.seconds)
                payload = {"trigger": position, "start": now.isoformat()}
                record = TimerRecord(timer_id, r.name, TimerKind.INTERVAL, due, payload)
            self.timers.add(record)

    def _startup(self) -> None:
        event = Started(id=new_id(), at=self.clock.now(), account="")
        for r in list(self.rules.values()):
            if r.on_startup():
                self._triggered(r, event, "startup")

    def _on_due(self, record: TimerRecord, late: bool) -> None:
        r = self.rules.get(record.rule)
        if r is None:
            return
        suffix = " (late: fell due while roost was down)" if late else ""
        if record.kind is TimerKind.DELAY:
            event = event_from_json(record.payload["event"])
            resumed = self._trace(r, "resumed after a delay (roost restarted)" + suffix, event)
            self._launch(r, event, resumed, self._states[r.name], int(record.payload["step"]))
            return
        if record.kind in (TimerKind.HOLD, TimerKind.DEBOUNCE):
            trace = self._states[r.name].pending.pop(record.id, None)
            event = event_from_json(record.payload["event"])
            label = str(record.payload.get("label", record.kind)) + suffix
            debounced = record.kind is TimerKind.DEBOUNCE
            self._triggered(r, event, label, trace, debounced=debounced)
            return
        trigger = r.triggers[int(record.payload["trigger"])]
        assert isinstance(trigger, Cron | Every)
        self._reschedule(r, record, trigger)
        event = Scheduled(
            id=new_id(),
            at=self.clock.now(),
            account="",
            schedule=trigger.describe(),
            due_at=record.due_at,
        )
        self._triggered(r, event, trigger.describe() + suffix)

    def _reschedule(self, r: Rule, record: TimerRecord, trigger: Cron | Every) -> None:
        now = self.clock.now()
        if isinstance(trigger, Cron):
            due = next_due(
                trigger, max(now, record.due_at), self.services.zone, self.services.locations
            )
        else:
            start = datetime.fromisoformat(str(record.payload["start"]))
            due = next_interval(start, trigger.seconds, max(now, record.due_at))
        self.timers.add(TimerRecord(record.id, r.name, record.kind, due, record.payload))

    def _on_missed(self, record: TimerRecord) -> None:
        r = self.rules.get(record.rule)
        if r is None:
            return
        label = str(record.payload.get("label", record.kind))
        trace = Trace(r.name, label, self.clock.now())
        trace.end(Result.MISSED, f"was due at {record.due_at:%Y-%m-%d %H:%M:%S} UTC while down")
        self.traces.add(trace)
        log.warning("rule timer missed while down", rule=r.name, due_at=record.due_at.isoformat())
        if record.kind in (TimerKind.CRON, TimerKind.INTERVAL):
            trigger = r.triggers[int(record.payload["trigger"])]
            if isinstance(trigger, Cron | Every):
                self._reschedule(r, record, trigger)

    def _still_meant(self, record: TimerRecord) -> bool:
        r = self.rules.get(record.rule)
        if r is None:
            return False
        if record.kind in (TimerKind.HOLD, TimerKind.DEBOUNCE):
            return True
        if record.kind is TimerKind.DELAY:
            return r.resume is not None
        position = int(record.payload.get("trigger", -1))
        return 0 <= position < len(r.triggers) and isinstance(r.triggers[position], Cron | Every)

    # ---- durable state -------------------------------------------------------------

    def export_state(self) -> dict[str, dict[str, Any]]:
        """Cooldowns, rate windows and threshold memory per rule, as plain JSON values.

        The per-tag notification windows are under the key `@notifications`.
        """
        out: dict[str, dict[str, Any]] = {}
        for name, state in self._states.items():
            out[name] = {
                "last_run": state.last_run.isoformat() if state.last_run else None,
                "runs": state.rate.export() if state.rate else [],
                "armed": dict(state.armed),
            }
        limiter = self.services.notify_limit
        if limiter is not None:
            out[NOTIFY_STATE_KEY] = {"windows": limiter.export()}
        return out

    def import_state(self, data: dict[str, dict[str, Any]]) -> None:
        """Restore what `export_state` gave (rules that no longer exist are ignored)."""
        for name, saved in data.items():
            if name == NOTIFY_STATE_KEY:
                if self.services.notify_limit is not None:
                    self.services.notify_limit.restore(saved.get("windows", {}))
                continue
            r = self.rules.get(name)
            if r is None:
                continue
            state = self._states.setdefault(name, RuleState())
            last = saved.get("last_run")
            state.last_run = datetime.fromisoformat(last) if last else None
            state.armed.update({str(k): bool(v) for k, v in saved.get("armed", {}).items()})
            if r.rate is not None:
                self._rate(r, state).restore(saved.get("runs", []))


def _take_waiting(inbox: MemoryObjectReceiveStream[Sequence[Event]], into: deque[Event]) -> None:
    """Move every batch waiting in `inbox` to `into`, without yielding to the loop."""
    try:
        while True:
            into.extend(inbox.receive_nowait())
    except (anyio.WouldBlock, anyio.EndOfStream):
        pass


def _same(before: Rule, after: Rule) -> bool:
    return before is after or (bool(before.fingerprint) and before.fingerprint == after.fingerprint)


def _build_index(rules: Iterable[Rule]) -> dict[str, dict[str, list[_Entry]]]:
    index: dict[str, dict[str, list[_Entry]]] = defaultdict(lambda: defaultdict(list))
    for r in rules:
        for position, trigger in r.event_triggers():
            entry = _Entry(r, trigger, position, trigger.describe(), trigger.stateful)
            index[trigger.event.name][trigger.device or _ANY_DEVICE].append(entry)
    return {name: dict(by_device) for name, by_device in index.items()}


def _describe(event: Event) -> str:
    text = event.name
    if hasattr(event, "new"):
        text += f" → {event.new}"
    return text


async def _resumed(r: Rule, event: Event, home: RuleHome, start: int) -> None:
    assert r.resume is not None
    await r.resume(event, home, start)
