"""The rule engine: the rule set, the task that takes events off the bus, schedules and
durable delays, causation chains and the rules' durable state.

The engine is assembled from one part per concept: `matching` (which rules an event
triggers, holds and thresholds), `admission` (echo, loop cut, alarm, debounce, cooldown,
rate limit, condition, run mode) and `runner` (a run's body stepped by hand, isolated,
traced). An exception, a hang or a blocking call is reported with the rule's name and never
stalls the bus or the other rules.

A run starts inline, in the task that takes events off the bus, so a body that never has
to wait (the common case: read the state, queue a command) costs no task of its own. When
a body does wait, that task stays with the run and a new one takes over the bus.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from roost.core.bus import Interest
from roost.core.clock import Clock
from roost.core.codec import event_from_json, event_to_json
from roost.core.events import CommandOutcome, Event, Scheduled, Started
from roost.core.ids import new_id
from roost.core.inbox import Inbox
from roost.core.timers import TimerKind, TimerPersistence, TimerRecord, Timers
from roost.engine.admission import Admission, LoopLimits, RuleState, RuleStats
from roost.engine.isolation import (
    DEFAULT_BLOCK_BUDGET_S,
    DEFAULT_MAX_COMMANDS,
    INTERRUPTER,
    Interrupter,
    LoopMonitor,
    resume,
)
from roost.engine.matching import Index, Matching, build_index
from roost.engine.rule_home import RuleHome, Services
from roost.engine.runner import Run, Runner
from roost.engine.traces import DEFAULT_PER_RULE, Result, Trace, TraceStore
from roost.rules.author import Rule
from roost.rules.conditions import as_condition
from roost.rules.schedule import next_interval
from roost.rules.sun import next_due
from roost.rules.triggers import Cron, Every

__all__ = ["NOTIFY_STATE_KEY", "Engine", "LoopLimits", "RuleState", "RuleStats"]

log = structlog.get_logger(__name__)

_CHAINS_KEPT = 512  # at least this many (at most twice)
# Runs + their commands between two takes from the inbox (1,024 batches): a run publishes
# a batch or two per command, and at most `max_commands` (50) commands.
_DRAIN_AFTER = 32
_CHAIN_MAX = 32
NOTIFY_STATE_KEY = "@notifications"
# Kinds of event roost publishes itself (every rule run's commands end as one), that the
# engine takes off the bus only to match them: its inbox leaves them out while no loaded
# rule watches them. Devices', structures' and alarms' events always come in.
_OWN_KINDS = frozenset({CommandOutcome.name})


@dataclass
class Engine(Matching, Admission, Runner):
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
    # What the engine's bus subscription leaves out (`Bus.subscribe(interest=...)`):
    # nothing until rules are loaded, then what `load` says.
    interest: Interest = field(default_factory=Interest)
    _index: Index = field(default_factory=dict)
    _states: dict[str, RuleState] = field(default_factory=dict)
    _chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # oldest first
    _tg: TaskGroup | None = None
    # Events taken off the bus and runs admitted, not yet handled/started; `_inline` is
    # True while the bus task works through them (runs admitted then start inline).
    _pending: deque[Event] = field(default_factory=deque)
    _ready: deque[Run] = field(default_factory=deque)
    _inline: bool = False
    _interrupter: Interrupter | None = None
    # Runs stopped by the block budget, the command cap or a real-time timeout: (rule, why).
    runaways: list[tuple[str, str]] = field(default_factory=list)
    clock: Clock = field(init=False, repr=False)  # the services' clock, read on every run

    def __post_init__(self) -> None:
        self.clock = self.services.clock
        self.traces = TraceStore(self.traces_per_rule)
        self.timers = Timers(
            self.services.clock, self._on_due, self._on_missed, self.persistence, self.grace_s
        )

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
            self._states.setdefault(name, RuleState()).traces = self.traces.of(name)
        self.stats = {name: self.stats[name] for name in self.rules}
        self._index = build_index(self.rules.values())
        # In the same step as the index (no await between): no batch published from now
        # on is left out that these rules could match.
        self.interest.ignored = _OWN_KINDS - self._index.keys()
        if self._tg is not None:
            for r in self.rules.values():
                self._arm_schedules(r)

    def reacts_to(self, event: Event) -> bool:
        """Some loaded rule has a trigger this event fires (roost pushes an alarm no rule
        reacts to itself: notify/alerts)."""
        return any(
            isinstance(event, trigger.event) and trigger.matches(event)
            for r in self.rules.values()
            for _, trigger in r.event_triggers()
        )

    def _forget(self, name: str) -> None:
        self.timers.cancel_all(t.id for t in self.timers.of_rule(name))
        state = self._states.pop(name, None)
        if state is not None:
            for trace in state.pending.values():
                trace.end(Result.CANCELLED, "the rule was reloaded", self.clock.now())

    # ---- running -------------------------------------------------------------------

    async def run(self, inbox: Inbox[Sequence[Event]]) -> None:
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
                run = self._ready.popleft()
                run.state.running.remove(run)
                run.trace.end(Result.CANCELLED, "the engine stopped", self.clock.now())

    async def _consume(self, inbox: Inbox[Sequence[Event]]) -> None:
        """Handle events off the bus, starting admitted runs inline. If a run has to wait,
        this task stays with it (so its cancel scopes stay in one task) and a new task
        takes over the bus."""
        pending, ready = self._pending, self._ready
        undrained = 0  # runs since the inbox was last emptied into `pending`
        while True:
            self._inline = True
            while ready or pending:
                if not ready:
                    event = pending.popleft()
                    slot = self._index.get(event.name)
                    if slot is None:
                        continue  # no rule can match it
                    if not slot.matches_any:
                        device = event.device
                        if device not in slot.by_key:
                            continue  # no rule can match it
                        entry = slot.single.get(device)
                        if entry is not None:  # `match`'s one candidate, which matches
                            self._triggered(entry.rule, event, entry.label)
                            continue
                    self.match(event, slot)
                    continue
                run = ready.popleft()
                rest = self._begin(run)
                if rest is not None:
                    try:
                        waits_for = rest.send(None)  # enters its cancel scope in this task
                    except StopIteration:
                        rest = None
                if rest is None:
                    # A run publishes (its commands' outcomes) to this very inbox: keep
                    # room in it, or a later run would wait on the engine itself. Taking
                    # them now or a few runs later handles them in the same order (with
                    # nothing left to do, the `receive` below takes them).
                    undrained += 1 + run.commands
                    if undrained >= _DRAIN_AFTER or (ready and not pending):
                        _take_waiting(inbox, pending)
                        undrained = 0
                    continue
                self._inline = False
                assert self._tg is not None
                self._tg.start_soon(self._consume, inbox, name="rule engine")
                await resume(rest, waits_for)
                return
            self._inline = False
            try:
                pending.extend(await inbox.receive())
            except anyio.EndOfStream:
                return
            _take_waiting(inbox, pending)

    def keep_delay(self, home: RuleHome, seconds: float, resume_at: int) -> str:
        """Store where a TOML run resumes after its delay, in case roost stops meanwhile."""
        delay_id = f"delay:{home.rule}:{new_id()}"
        due = self.clock.now() + timedelta(seconds=seconds)
        r = self.rules.get(home.rule)
        steps = r.steps_from(resume_at) if r is not None else ""
        payload = {"event": event_to_json(home.event), "step": resume_at, "steps": steps}
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
        chains = self._chains
        chain = chains.get(key)
        if chain is None:
            chains[key] = (rule,)
            if len(chains) > 2 * _CHAINS_KEPT:  # the older half goes, in one step
                self._chains = dict(list(chains.items())[-_CHAINS_KEPT:])
        elif len(chain) < _CHAIN_MAX:
            chains[key] = (*chain, rule)

    def _trace(self, r: Rule, label: str, event: Event, now: datetime | None = None) -> Trace:
        at = now if now is not None else self.clock.now()
        key = event.context.correlation  # the rules that ran before in its causation chain
        chain = self._chains.get(key, ()) if key else ()
        trace = Trace(r.name, label, at, event, chain)
        self._states[r.name].traces.append(trace)
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
            self._resume(r, record, suffix)
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

    def _resume(self, r: Rule, record: TimerRecord, suffix: str) -> None:
        """A TOML run's delay fell due after a restart: go on with its next step, unless the
        rule's steps from there on were edited meanwhile (roost does not guess which of
        the new steps the old run was at)."""
        event = event_from_json(record.payload["event"])
        step = int(record.payload["step"])
        resumed = self._trace(r, "resumed after a delay (roost restarted)" + suffix, event)
        saved = record.payload.get("steps")  # absent in records from before it was kept
        if saved is not None and saved != r.steps_from(step):
            reason = "the rule's steps after its delay were edited while it waited: not resumed"
            log.warning("delayed run not resumed", rule=r.name, source=r.source, reason=reason)
            resumed.end(Result.SKIPPED, reason, self.clock.now())
            return
        self._launch(r, event, resumed, self._states[r.name], step)

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
            state = self._states[name]  # `load` made it
            last = saved.get("last_run")
            state.last_run = datetime.fromisoformat(last) if last else None
            state.armed.update({str(k): bool(v) for k, v in saved.get("armed", {}).items()})
            if r.rate is not None:
                self._rate(r, state).restore(saved.get("runs", []))


def _take_waiting(inbox: Inbox[Sequence[Event]], into: deque[Event]) -> None:
    """Move every batch waiting in `inbox` to `into`, without yielding to the loop."""
    for batch in inbox.take_all():
        into.extend(batch)


def _same(before: Rule, after: Rule) -> bool:
    return before is after or (bool(before.fingerprint) and before.fingerprint == after.fingerprint)
