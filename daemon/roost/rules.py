"""The rule API a home's owner writes against (Python face).

    from roost import rule, when

    @rule(on=when("presence", to="away"), cooldown="1h")
    async def eco_when_away(event, home):
        for thermostat in home.thermostats(structure=event.structure):
            await thermostat.set_eco(True)

TOML rules compile to the same `Rule` (see `toml_rules`).
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from roost.durations import parse_duration
from roost.events import EVENT_TYPES, Event

RuleBody = Callable[[Any, Any], Awaitable[None]]
Condition = Callable[[Any, Any], bool]

# Filter keys that are not event fields: `from`/`to` compare a change's old/new value,
# `device` accepts a device id or its name.
_ALIASES = {"from": "old", "from_": "old", "to": "new"}
_SHOWN = {"old": "from", "new": "to"}


class RuleDefinitionError(ValueError):
    """A rule is written wrong; the message says how to fix it."""


def _event_type(event: str | type[Event]) -> type[Event]:
    if isinstance(event, str):
        cls = EVENT_TYPES.get(event)
        if cls is None:
            known = ", ".join(sorted(EVENT_TYPES))
            raise RuleDefinitionError(f"unknown event {event!r}; known events: {known}")
        return cls
    if isinstance(event, type) and issubclass(event, Event):
        return event
    raise RuleDefinitionError(f"not an event type: {event!r}")


def _one_of(value: Any) -> frozenset[Any] | Any:
    if isinstance(value, list | tuple | set | frozenset):
        return frozenset(value)
    return value


@dataclass(frozen=True)
class Trigger:
    """An event type and filters on its fields. A list value means "one of"."""

    event: type[Event]
    filters: tuple[tuple[str, Any], ...] = ()
    device: str | None = None

    def matches(self, event: Event) -> bool:
        for name, wanted in self.filters:
            value = getattr(event, name, None)
            if isinstance(wanted, frozenset):
                if value not in wanted:
                    return False
            elif value != wanted:
                return False
        return True

    def describe(self) -> str:
        parts = [self.event.name]
        if self.device:
            parts.append(f"device={self.device}")
        for key, value in self.filters:
            shown = sorted(map(str, value)) if isinstance(value, frozenset) else value
            parts.append(f"{_SHOWN.get(key, key)}={shown}")
        return " ".join(parts)


def when(event: str | type[Event], *, device: str | None = None, **filters: Any) -> Trigger:
    """A trigger: `when("co", to=["warning", "emergency"])`, `when("temperature", device="Den")`."""
    cls = _event_type(event)
    names = {f.name for f in dataclasses.fields(cls)}
    resolved: list[tuple[str, Any]] = []
    for key, value in filters.items():
        name = _ALIASES.get(key, key)
        if name not in names:
            usable = sorted({"from", "to"} | names if "old" in names else names)
            raise RuleDefinitionError(
                f"event {cls.name!r} has no field {key!r}; filter on one of: {', '.join(usable)}"
            )
        resolved.append((name, _one_of(value)))
    return Trigger(cls, tuple(resolved), device)


@dataclass
class Rule:
    name: str
    triggers: tuple[Trigger, ...]
    body: RuleBody
    condition: Condition | None = None
    cooldown_s: float = 0.0
    dry_run: bool = False
    timeout_s: float | None = None
    react_to_own_echo: bool = False
    source: str = "<unknown>"
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


_collector: contextvars.ContextVar[list[Rule] | None] = contextvars.ContextVar(
    "roost_rule_collector", default=None
)


def collecting() -> tuple[list[Rule], contextvars.Token[list[Rule] | None]]:
    """Start collecting the rules that `@rule` declares (used by the loader)."""
    found: list[Rule] = []
    return found, _collector.set(found)


def stop_collecting(token: contextvars.Token[list[Rule] | None]) -> None:
    _collector.reset(token)


def _triggers(on: Trigger | str | Sequence[Trigger | str]) -> tuple[Trigger, ...]:
    items: Iterable[Trigger | str] = [on] if isinstance(on, Trigger | str) else on
    triggers = tuple(t if isinstance(t, Trigger) else when(t) for t in items)
    if not triggers:
        raise RuleDefinitionError("a rule needs at least one trigger (on=...)")
    return triggers


def rule(
    on: Trigger | str | Sequence[Trigger | str],
    *,
    name: str | None = None,
    cooldown: str | float | None = None,
    dry_run: bool = False,
    timeout: str | float | None = None,
    react_to_own_echo: bool = False,
) -> Callable[[RuleBody], RuleBody]:
    """Declare an async function `(event, home)` as a rule. Returns the function unchanged."""
    triggers = _triggers(on)
    cooldown_s = parse_duration(cooldown)
    timeout_s = parse_duration(timeout) if timeout is not None else None

    def register(fn: RuleBody) -> RuleBody:
        code = getattr(fn, "__code__", None)
        source = f"{code.co_filename}:{code.co_firstlineno}" if code else "<unknown>"
        declared = Rule(
            name=name or str(getattr(fn, "__name__", "rule")),
            triggers=triggers,
            body=fn,
            cooldown_s=cooldown_s,
            dry_run=dry_run,
            timeout_s=timeout_s,
            react_to_own_echo=react_to_own_echo,
            source=source,
            description=(fn.__doc__ or "").strip(),
        )
        found = _collector.get()
        if found is not None:
            found.append(declared)
        return fn

    return register
