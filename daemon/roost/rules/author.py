"""The rule API a home's owner writes against (Python face).

    from roost import rule, when

    @rule(on=when("presence", to="away"), hold="10m", cooldown="1h")
    async def eco_when_away(event, home):
        for thermostat in home.thermostats(structure=event.structure):
            await thermostat.set_eco(True)

TOML rules compile to the same `Rule` (see `toml_rules`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from roost.core.durations import parse_duration, parse_rate
from roost.rules.check import Reference
from roost.rules.conditions import Condition, ConditionError, all_of, as_condition
from roost.rules.triggers import (
    AnyTrigger,
    Cron,
    Every,
    RuleDefinitionError,
    Startup,
    Trigger,
    cron,
    every,
    startup,
    when,
)

__all__ = [
    "Rule",
    "RuleDefinitionError",
    "RunMode",
    "Trigger",
    "cron",
    "every",
    "rule",
    "startup",
    "when",
]

RuleBody = Callable[[Any, Any], Awaitable[None]]
Body = TypeVar("Body", bound=RuleBody)
ConditionLike = Condition | Callable[[Any, Any], Any]

DEFAULT_MAX_RUNS = 10


class RunMode(StrEnum):
    """What happens when a rule triggers while a run of it is still going (as in HA)."""

    SINGLE = "single"  # the new trigger is ignored
    RESTART = "restart"  # the running one is cancelled, the new one starts
    QUEUED = "queued"  # the new one waits its turn (at most `max_runs` running + waiting)
    PARALLEL = "parallel"  # runs side by side (at most `max_runs`)


@dataclass
class Rule:
    name: str
    triggers: tuple[AnyTrigger, ...]
    body: RuleBody
    condition: ConditionLike | None = None
    cooldown_s: float = 0.0
    dry_run: bool = False
    timeout_s: float | None = None
    react_to_own_echo: bool = False
    source: str = "<unknown>"
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    mode: RunMode = RunMode.QUEUED
    max_runs: int = DEFAULT_MAX_RUNS
    rate: tuple[int, float] | None = None  # at most N runs per window (seconds)
    debounce_s: float = 0.0
    path: str = ""  # the rule file (set by the loader)
    fingerprint: str = ""  # a digest of the file's content: unchanged file, kept state
    # Runs the body from step N (TOML rules): what lets a run resume after a `delay` when
    # roost restarted meanwhile. A Python coroutine cannot be resumed that way.
    resume: Callable[[Any, Any, int], Awaitable[None]] | None = None
    # Each step as written (TOML rules): a run resumed after a restart goes on only if the
    # steps from its resume point on are still the ones it stopped in.
    step_texts: tuple[str, ...] = ()
    # The device, room, structure and tag names it uses (for `roost check` against the home).
    references: tuple[Reference, ...] = ()

    def event_triggers(self) -> list[tuple[int, Trigger]]:
        return [(i, t) for i, t in enumerate(self.triggers) if isinstance(t, Trigger)]

    def schedules(self) -> list[tuple[int, Cron | Every]]:
        return [(i, t) for i, t in enumerate(self.triggers) if isinstance(t, Cron | Every)]

    def on_startup(self) -> bool:
        return any(isinstance(t, Startup) for t in self.triggers)

    def steps_from(self, start: int) -> str:
        """A digest of the steps a run resumed at step `start` would run."""
        return hashlib.sha256("\x1e".join(self.step_texts[start:]).encode()).hexdigest()[:16]


_collector: contextvars.ContextVar[list[Rule] | None] = contextvars.ContextVar(
    "roost_rule_collector", default=None
)


def collecting() -> tuple[list[Rule], contextvars.Token[list[Rule] | None]]:
    """Start collecting the rules that `@rule` declares (used by the loader)."""
    found: list[Rule] = []
    return found, _collector.set(found)


def stop_collecting(token: contextvars.Token[list[Rule] | None]) -> None:
    _collector.reset(token)


def triggers_of(
    on: AnyTrigger | str | Sequence[AnyTrigger | str], hold: str | float | None = None
) -> tuple[AnyTrigger, ...]:
    """Normalise `on=`: one trigger or a list; a string is an event name (or "startup").
    A rule-level `hold` applies to every event trigger that has none of its own."""
    items: Iterable[AnyTrigger | str] = (
        [on] if isinstance(on, Trigger | Cron | Every | Startup | str) else on
    )
    out: list[AnyTrigger] = []
    for item in items:
        if item == "startup":
            item = startup()
        elif isinstance(item, str):
            item = when(item)
        out.append(item)
    if not out:
        raise RuleDefinitionError("a rule needs at least one trigger (on=...)")
    hold_s = _duration(hold, "hold")
    if hold_s:
        out = [
            dataclasses.replace(t, hold_s=hold_s) if isinstance(t, Trigger) and not t.hold_s else t
            for t in out
        ]
    return tuple(out)


def _duration(value: str | float | None, what: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleDefinitionError(f"{what}: {exc}") from None


def options(
    *,
    mode: str | RunMode = RunMode.QUEUED,
    max_runs: int = DEFAULT_MAX_RUNS,
    rate: str | tuple[int, str | float] | None = None,
) -> tuple[RunMode, int, tuple[int, float] | None]:
    """Validate the run mode, its bound and the rate limit (shared by both faces)."""
    try:
        run_mode = RunMode(mode)
    except ValueError:
        known = ", ".join(m.value for m in RunMode)
        raise RuleDefinitionError(f"unknown mode {mode!r}; use one of: {known}") from None
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise RuleDefinitionError(f"max must be a whole number ≥ 1, not {max_runs!r}")
    try:
        parsed_rate = parse_rate(rate)
    except ValueError as exc:
        raise RuleDefinitionError(f"rate: {exc}") from None
    return run_mode, max_runs, parsed_rate


def condition_of(value: ConditionLike | Sequence[ConditionLike] | None) -> Condition | None:
    if value is None:
        return None
    try:
        if isinstance(value, list | tuple):
            return all_of(*value)
        return as_condition(value)  # type: ignore[arg-type]
    except ConditionError as exc:
        raise RuleDefinitionError(str(exc)) from None


def rule(
    on: AnyTrigger | str | Sequence[AnyTrigger | str],
    *,
    name: str | None = None,
    condition: ConditionLike | Sequence[ConditionLike] | None = None,
    hold: str | float | None = None,
    cooldown: str | float | None = None,
    rate: str | tuple[int, str | float] | None = None,
    debounce: str | float | None = None,
    mode: str | RunMode = RunMode.QUEUED,
    max: int = DEFAULT_MAX_RUNS,
    dry_run: bool = False,
    timeout: str | float | None = None,
    react_to_own_echo: bool = False,
) -> Callable[[Body], Body]:
    """Declare an async function `(event, home)` as a rule. Returns the function unchanged.

    on: triggers; condition: must hold when triggered; hold: the event triggers' state
    must last this long; cooldown: quiet time after a run; rate: "3/1h" at most;
    debounce: run once things have been quiet this long; mode/max: see `RunMode`.
    """
    triggers = triggers_of(on, hold)
    run_mode, max_runs, parsed_rate = options(mode=mode, max_runs=max, rate=rate)
    cooldown_s = _duration(cooldown, "cooldown")
    debounce_s = _duration(debounce, "debounce")
    timeout_s = _duration(timeout, "timeout") if timeout is not None else None
    checked = condition_of(condition)

    def register(fn: Body) -> Body:
        code = getattr(fn, "__code__", None)
        source = f"{code.co_filename}:{code.co_firstlineno}" if code else "<unknown>"
        declared = Rule(
            name=name or str(getattr(fn, "__name__", "rule")),
            triggers=triggers,
            body=fn,
            condition=checked,
            cooldown_s=cooldown_s,
            dry_run=dry_run,
            timeout_s=timeout_s,
            react_to_own_echo=react_to_own_echo,
            source=source,
            description=(fn.__doc__ or "").strip(),
            mode=run_mode,
            max_runs=max_runs,
            rate=parsed_rate,
            debounce_s=debounce_s,
        )
        found = _collector.get()
        if found is not None:
            found.append(declared)
        return fn

    return register
