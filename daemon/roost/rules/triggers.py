"""What starts a rule: an event (with filters, a threshold crossing, a hold), a cron
schedule, a fixed interval, or the daemon's start.

    when("co", to=["warning", "emergency"])          # an event, one of several values
    when("presence", to="away", hold="10m")          # ... that stays so for 10 minutes
    when("temperature", device="Den", above=26, hysteresis=0.5)   # crossing, not sampling
    cron("30 7 * * mon-fri")    every("15m")    startup()
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from roost.core.durations import parse_duration
from roost.core.events import EVENT_TYPES, Event
from roost.rules.schedule import ScheduleError, check_cron

# Filter keys that are not event fields: `from`/`to` compare a change's old/new value.
_ALIASES = {"from": "old", "from_": "old", "to": "new"}
_SHOWN = {"old": "from", "new": "to"}
_VALUE_FIELDS = frozenset({"old", "new"})


class RuleDefinitionError(ValueError):
    """A rule is written wrong; the message says how to fix it. `key`: the key it is at."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def event_type(event: str | type[Event]) -> type[Event]:
    if isinstance(event, str):
        cls = EVENT_TYPES.get(event)
        if cls is None:
            known = ", ".join(sorted(EVENT_TYPES))
            raise RuleDefinitionError(f"unknown event {event!r}; known events: {known}", "event")
        return cls
    if isinstance(event, type) and issubclass(event, Event):
        return event
    raise RuleDefinitionError(f"not an event type: {event!r}")


def _one_of(value: Any, key: str = "") -> frozenset[Any] | Any:
    if isinstance(value, list | tuple | set | frozenset):
        try:
            return frozenset(value)
        except TypeError:  # a list of lists or tables
            raise RuleDefinitionError(f"{key}: a value or a list of values", key) from None
    return value


def _filters_match(filters: tuple[tuple[str, Any], ...], event: Event) -> bool:
    for name, wanted in filters:
        value = getattr(event, name, None)
        if isinstance(wanted, frozenset):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


@dataclass(frozen=True, slots=True)
class Threshold:
    """A numeric level on the event's new value. It fires when the value *crosses* into
    the level, then re-arms only once the value has left it by `hysteresis`."""

    above: float | None = None
    below: float | None = None
    hysteresis: float = 0.0

    def inside(self, value: Any) -> bool:
        if not isinstance(value, int | float):
            return False
        return (self.above is None or value > self.above) and (
            self.below is None or value < self.below
        )

    def rearms(self, value: Any) -> bool:
        if not isinstance(value, int | float):
            return False
        h = self.hysteresis
        return (self.above is not None and value <= self.above - h) or (
            self.below is not None and value >= self.below + h
        )

    def describe(self) -> str:
        parts = []
        if self.above is not None:
            parts.append(f"above {self.above:g}")
        if self.below is not None:
            parts.append(f"below {self.below:g}")
        if self.hysteresis:
            parts.append(f"(hysteresis {self.hysteresis:g})")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Trigger:
    """An event type and filters on its fields. A list value means "one of".

    `filters` on `old`/`new` say what the value must be; the others (`attribute`, …) say
    which thing the event is about. A hold is cancelled by an event about the same thing
    whose value no longer matches.
    """

    event: type[Event]
    filters: tuple[tuple[str, Any], ...] = ()
    device: str | None = None
    threshold: Threshold | None = None
    hold_s: float = 0.0
    identity: tuple[tuple[str, Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kept = tuple(f for f in self.filters if f[0] not in _VALUE_FIELDS)
        object.__setattr__(self, "identity", kept)

    @property
    def stateful(self) -> bool:
        return self.threshold is not None or self.hold_s > 0

    def matches(self, event: Event) -> bool:
        """Filters hold (and the value is inside the threshold's level, if any)."""
        if not _filters_match(self.filters, event):
            return False
        return self.threshold is None or self.threshold.inside(getattr(event, "new", None))

    def about(self, event: Event) -> bool:
        """The event concerns what this trigger watches (identity filters only)."""
        return _filters_match(self.identity, event)

    def describe(self) -> str:
        parts = [self.event.name]
        if self.device:
            parts.append(f"device={self.device}")
        for key, value in self.filters:
            shown = sorted(map(str, value)) if isinstance(value, frozenset) else value
            parts.append(f"{_SHOWN.get(key, key)}={shown}")
        if self.threshold is not None:
            parts.append(self.threshold.describe())
        if self.hold_s:
            parts.append(f"for {_seconds(self.hold_s)}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron schedule (five fields) in the home's time zone."""

    expr: str

    def describe(self) -> str:
        return f"cron {self.expr}"


@dataclass(frozen=True, slots=True)
class Every:
    """A fixed interval, counted from when the rule is loaded."""

    seconds: float

    def describe(self) -> str:
        return f"every {_seconds(self.seconds)}"


@dataclass(frozen=True, slots=True)
class Startup:
    """Once, when the daemon starts."""

    def describe(self) -> str:
        return "startup"


AnyTrigger = Trigger | Cron | Every | Startup


def _seconds(s: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{s / size:g}{unit}"
    return f"{s:g}s"


def when(
    event: str | type[Event],
    *,
    device: str | None = None,
    above: float | None = None,
    below: float | None = None,
    hysteresis: float = 0.0,
    hold: str | float | None = None,
    **filters: Any,
) -> Trigger:
    """An event trigger.

    `when("co", to=["warning", "emergency"])`, `when("temperature", device="Den")`,
    `when("temperature", above=26, hysteresis=0.5)` (fires on crossing),
    `when("presence", to="away", hold="10m")` (must stay so for 10 minutes).
    """
    cls = event_type(event)
    names = {f.name for f in dataclasses.fields(cls)}
    resolved: list[tuple[str, Any]] = []
    for key, value in filters.items():
        name = _ALIASES.get(key, key)
        if name not in names:
            usable = sorted({"from", "to"} | names if "old" in names else names)
            raise RuleDefinitionError(
                f"event {cls.name!r} has no field {key!r}; filter on one of: {', '.join(usable)}",
                key,
            )
        resolved.append((name, _one_of(_checked_value(cls, name, key, value), key)))
    threshold = None
    if above is not None or below is not None:
        if "new" not in names:
            raise RuleDefinitionError(
                f"event {cls.name!r} has no value to compare (above/below)",
                "above" if above is not None else "below",
            )
        margin = _number(hysteresis, "hysteresis")
        if margin is None or margin < 0:
            raise RuleDefinitionError("hysteresis takes a number, 0 or more", "hysteresis")
        threshold = Threshold(_number(above, "above"), _number(below, "below"), margin)
    elif hysteresis:
        raise RuleDefinitionError("hysteresis needs above= or below=", "hysteresis")
    return Trigger(cls, tuple(resolved), device, threshold, _duration(hold, "hold"))


# Words people see for a boolean value (the demo and traces print connectivity this way).
BOOL_WORDS: dict[str, dict[str, bool]] = {
    "connectivity": {"online": True, "offline": False},
}


_HINTS: dict[type[Event], dict[str, Any]] = {}


def _field_types(cls: type[Event]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def value_type(cls: type[Event], name: str) -> tuple[type, ...]:
    """The concrete types a field of an event can hold (None left out); () for Any."""
    hint = _field_types(cls).get(name, Any)
    args = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else ()
    kinds = tuple(t for t in (args or (hint,)) if t is not type(None) and isinstance(t, type))
    return () if hint is Any else kinds


def allowed_values(cls: type[Event], name: str) -> list[str]:
    """What a filter on this field may say, in words (for messages and the reference)."""
    shown: list[str] = []
    for kind in value_type(cls, name):
        if issubclass(kind, Enum):
            shown.extend(str(m.value) for m in kind)
        elif kind is bool:
            shown.extend([*BOOL_WORDS.get(cls.name, {}), "true", "false"])
        else:
            shown.append(f"a {_TYPE_WORDS.get(kind, kind.__name__)}")
    return shown


_TYPE_WORDS = {float: "number", int: "whole number", str: "text", bool: "true/false"}


def _checked_value(cls: type[Event], name: str, key: str, value: Any) -> Any:
    """A filter value in the event's own type: "offline" → False, "eco" → the enum member.
    A value the field can never hold is refused (it would never match)."""
    if isinstance(value, list | tuple | set | frozenset):
        return [_checked_value(cls, name, key, v) for v in value]
    kinds = value_type(cls, name)
    if not kinds or value is None:
        return value
    for kind in kinds:
        converted = _convert(cls, kind, value)
        if converted is not _NO_MATCH:
            return converted
    allowed = ", ".join(allowed_values(cls, name))
    raise RuleDefinitionError(
        f"event {cls.name!r} never has {_SHOWN.get(name, key)}={value!r}; "
        f"its values are: {allowed}",
        key,
    )


_NO_MATCH = object()


def _convert(cls: type[Event], kind: type, value: Any) -> Any:
    if issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            return _NO_MATCH
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = BOOL_WORDS.get(cls.name, {}).get(str(value).casefold())
        return _NO_MATCH if word is None else word
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else _NO_MATCH
    return value if isinstance(value, kind) else _NO_MATCH


def cron(expr: str) -> Cron:
    """`cron("30 7 * * mon-fri")`: minute hour day month weekday, in the home's zone."""
    try:
        return Cron(check_cron(expr))
    except ScheduleError as exc:
        raise RuleDefinitionError(str(exc)) from None


def every(interval: str | float) -> Every:
    """`every("15m")`."""
    seconds = _duration(interval, "every")
    if seconds <= 0:
        raise RuleDefinitionError("every needs a positive interval, e.g. every('15m')")
    return Every(seconds)


def startup() -> Startup:
    return Startup()


def _number(value: float | None, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleDefinitionError(f"above/below/hysteresis take a number, not {value!r}", key)
    if not math.isfinite(value):  # a threshold at NaN or infinity is never crossed
        raise RuleDefinitionError(f"{key} must be finite, not {value!r}", key)
    return float(value)


def _duration(value: str | float | None, what: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleDefinitionError(f"{what}: {exc}", what) from None
