"""Traces: what happened each time a rule was triggered, and why it did or did not run.

A trace records the trigger, the event and its causation chain, each condition's result,
each action and its outcome (sent, refused by a guard and why, failed), and the end: ran,
failed, timed out, cancelled, or skipped with the reason (a condition, the cooldown, the
rate limit, the run mode, a loop cut). The store keeps the latest N per rule.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from roost.core.events import CommandOutcome, Event
from roost.core.ids import next_number, spelled

DEFAULT_PER_RULE = 100


class Result(StrEnum):
    RUNNING = "running"
    RAN = "ran"
    FAILED = "failed"  # the rule body raised
    TIMED_OUT = "timed_out"
    BLOCKED = "blocked"  # stopped: held the event loop past the block budget
    STOPPED = "stopped"  # stopped: too many commands in one run
    CANCELLED = "cancelled"  # restart mode, or a reload
    SKIPPED = "skipped"  # triggered, but something stopped it: see `reason`
    PENDING = "pending"  # a hold or debounce is waiting
    QUEUED = "queued"  # queued mode: waiting for the running one
    MISSED = "missed"  # a timer fell due while the daemon was down, beyond the grace


@dataclass(slots=True)
class Step:
    what: str  # "eco on → t1", "notify 'CO warning'", "run rule x"
    outcome: str  # sent, dry_run, refused, failed, suppressed, ...
    detail: str = ""


class CommandStep(Step):
    """A command's step, worded when first read: `what` is "<action> → <target's name>",
    `outcome` the command's outcome and `detail` its guard and reason. Most traces are
    never read, so their commands' steps are never worded."""

    __slots__ = ("_made", "_shown")

    def __init__(self, made: CommandOutcome, shown: str) -> None:
        self._made = made
        self._shown = shown

    def __getattr__(self, name: str) -> str:
        # Only the unset `Step` fields come here (a slot not set yet raises AttributeError).
        if name not in ("what", "outcome", "detail"):
            raise AttributeError(name)
        made = self._made
        # the outcome's `action` is the action's description, already made
        self.what = f"{made.action} → {self._shown}"
        self.outcome = str(made.outcome)
        self.detail = f"{made.guard}: {made.reason}" if made.guard else made.reason
        return str(getattr(self, name))


_new = object.__new__


def command_step(made: CommandOutcome, shown: str) -> CommandStep:
    """`CommandStep(made, shown)`, without the call of its `__init__` (one a command)."""
    step: CommandStep = _new(CommandStep)
    step._made = made
    step._shown = shown
    return step


@dataclass(slots=True)
class Trace:
    rule: str
    trigger: str
    at: datetime
    event: Event | None = None
    chain: tuple[str, ...] = ()
    conditions: list[tuple[str, bool]] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    result: Result = Result.RUNNING
    reason: str = ""
    finished_at: datetime | None = None
    number: int = field(default_factory=next_number, repr=False)  # its id, spelled if read

    @property
    def id(self) -> str:
        return spelled("t", self.number)

    def step(self, what: str, outcome: str, detail: str = "") -> None:
        self.steps.append(Step(what, outcome, detail))

    def end(self, result: Result, reason: str = "", at: datetime | None = None) -> None:
        self.result = result
        self.reason = reason
        self.finished_at = at

    def to_json(self) -> dict[str, Any]:
        e = self.event
        return {
            "id": self.id,
            "rule": self.rule,
            "trigger": self.trigger,
            "at": self.at.isoformat(),
            "event": None if e is None else _event_summary(e),
            "chain": list(self.chain),
            "conditions": [{"condition": c, "ok": ok} for c, ok in self.conditions],
            "steps": [
                {"what": s.what, "outcome": s.outcome, "detail": s.detail} for s in self.steps
            ],
            "result": str(self.result),
            "reason": self.reason,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


def _event_summary(e: Event) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "name": e.name,
        "id": e.id,
        "at": e.at.isoformat(),
        "device": e.device,
        "structure": e.structure,
        "causation": e.context.causation,
        "correlation": e.context.correlation,
        "caused_by_rule": e.context.rule,
        "depth": e.context.depth,
    }
    for key in ("old", "new", "attribute"):
        if hasattr(e, key):
            value = getattr(e, key)
            summary[key] = value if isinstance(value, str | int | float | None) else str(value)
    return summary


_RUNNING = Result.RUNNING  # read once: a member read through its enum is a lookup


def begun(rule: str, trigger: str, at: datetime, event: Event, chain: tuple[str, ...]) -> Trace:
    """`Trace(rule, trigger, at, event, chain)`, as admission starts one for every triggered
    rule: the same fields and defaults, set without the dataclass `__init__` (its call,
    and a check per defaulted field)."""
    trace: Trace = _new(Trace)
    trace.rule = rule
    trace.trigger = trigger
    trace.at = at
    trace.event = event
    trace.chain = chain
    trace.conditions = []
    trace.steps = []
    trace.result = _RUNNING
    trace.reason = ""
    trace.finished_at = None
    trace.number = next_number()
    return trace


class TraceStore:
    """The latest traces of each rule, newest last."""

    def __init__(self, per_rule: int = DEFAULT_PER_RULE) -> None:
        self.per_rule = per_rule
        self._by_rule: dict[str, deque[Trace]] = {}

    def add(self, trace: Trace) -> None:
        self.of(trace.rule).append(trace)

    def of(self, rule: str) -> deque[Trace]:
        """The rule's traces, newest last (made empty on first use; the same deque from then
        on, which the engine appends a run's trace to)."""
        found = self._by_rule.get(rule)
        if found is None:
            found = self._by_rule[rule] = deque(maxlen=self.per_rule)
        return found

    def latest(self, rule: str | None = None, limit: int = 20) -> list[Trace]:
        """The newest `limit` traces of one rule, or of all rules, oldest first."""
        if rule is not None:
            return list(self._by_rule.get(rule, ()))[-limit:]
        every = [t for traces in self._by_rule.values() for t in traces]
        return sorted(every, key=lambda t: t.at)[-limit:]

    def rules(self) -> list[str]:
        return sorted(self._by_rule)

    def forget(self, rule: str) -> None:
        found = self._by_rule.get(rule)
        if found is not None:
            found.clear()  # in place: the engine holds the deque


# ---- reading them ----------------------------------------------------------------------

_MARK = {True: "✓", False: "✗"}


def format_trace(data: dict[str, Any]) -> str:
    """A trace (as `to_json` gives it) as a few readable lines."""
    lines = [f"{data['at']}  {data['rule']}  {data['result'].upper()}"]
    if data.get("reason"):
        lines[0] += f": {data['reason']}"
    event = data.get("event")
    trigger = f"  trigger   {data['trigger']}"
    if event:
        trigger += f"  [{_describe_event(event)}]"
    lines.append(trigger)
    if data.get("chain"):
        lines.append(f"  chain     {' → '.join(data['chain'])}")
    for c in data.get("conditions", []):
        lines.append(f"  {_MARK[bool(c['ok'])]} if      {c['condition']}")
    for s in data.get("steps", []):
        detail = f" ({s['detail']})" if s.get("detail") else ""
        lines.append(f"  → {s['what']}: {s['outcome']}{detail}")
    return "\n".join(lines)


def _describe_event(e: dict[str, Any]) -> str:
    text = str(e["name"])
    if "old" in e or "new" in e:
        text += f" {e.get('old')} → {e.get('new')}"
    where = e.get("device") or e.get("structure")
    if where:
        text += f" on {where}"
    if e.get("caused_by_rule"):
        text += f", echo of rule {e['caused_by_rule']}"
    return text
