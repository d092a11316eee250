"""Conditions on the current state of the home, composable with all / any / not.

The same objects serve both faces: Python rules build them with `device_state(...)`,
`presence(...)`, `time_between(...)`, `weekday(...)`, `all_of`, `any_of`, `not_`, and TOML
tables compile to them (`condition = { any = [ ... ] }`). Each condition describes itself,
and `check` records every leaf's result, so a trace can say which one said no.
Attribute names are checked when the rule is loaded, not when it first runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from roost.core.durations import parse_time_of_day
from roost.core.model import Camera, SmokeCoAlarm, Structure, Thermostat, attribute_names

Results = list[tuple[str, bool]]

DEVICE_ATTRIBUTES = frozenset().union(
    *(attribute_names(c) for c in (Thermostat, SmokeCoAlarm, Camera))
)
STRUCTURE_ATTRIBUTES = frozenset(attribute_names(Structure))
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda v, w: v == w,
    "not_equals": lambda v, w: v != w,
    "in": lambda v, w: v in w,
    "above": lambda v, w: v is not None and v > w,
    "below": lambda v, w: v is not None and v < w,
}


class ConditionError(ValueError):
    """A condition is written wrong; the message says how to fix it."""


class Condition(Protocol):
    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        """True if the condition holds now; leaf results are appended to `results`."""

    def describe(self) -> str: ...


def _record(results: Results | None, what: str, ok: bool) -> bool:
    if results is not None:
        results.append((what, ok))
    return ok


def _one_op(ops: dict[str, Any]) -> tuple[str, Any]:
    given = [(op, value) for op, value in ops.items() if value is not None]
    if len(given) != 1:
        raise ConditionError(f"a state condition needs exactly one of: {', '.join(OPS)}")
    op, value = given[0]
    if op not in OPS:
        raise ConditionError(f"unknown comparison {op!r}; use one of: {', '.join(OPS)}")
    return op, value


def _check_attribute(attribute: str, known: frozenset[str], what: str) -> None:
    if attribute not in known:
        raise ConditionError(
            f"unknown {what} attribute {attribute!r}; known: {', '.join(sorted(known))}"
        )


@dataclass(frozen=True)
class DeviceState:
    """An attribute of a device (by id or name; "event": the device of the event)."""

    device: str
    attribute: str
    op: str
    value: Any

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        found = home.find_device(None if self.device == "event" else self.device)
        actual = getattr(found.state, self.attribute, None) if found is not None else None
        ok = found is not None and OPS[self.op](actual, self.value)
        return _record(results, f"{self.describe()} (is {actual!r})", ok)

    def describe(self) -> str:
        return f"{self.device}.{self.attribute} {self.op} {self.value!r}"


@dataclass(frozen=True)
class StructureState:
    """An attribute of a structure (by id or name; "event": the structure of the event)."""

    structure: str
    attribute: str
    op: str
    value: Any

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        found = home.structure(None if self.structure == "event" else self.structure)
        actual = getattr(found, self.attribute, None) if found is not None else None
        ok = found is not None and OPS[self.op](actual, self.value)
        return _record(results, f"{self.describe()} (is {actual!r})", ok)

    def describe(self) -> str:
        return f"structure {self.structure}.{self.attribute} {self.op} {self.value!r}"


@dataclass(frozen=True)
class TimeWindow:
    """The home's local time of day is in [after, before); the window may span midnight."""

    after: int  # minutes after midnight
    before: int

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        local = home.local_now()
        minute = local.hour * 60 + local.minute
        if self.after <= self.before:
            ok = self.after <= minute < self.before
        else:
            ok = minute >= self.after or minute < self.before
        return _record(results, f"{self.describe()} (it is {local:%H:%M})", ok)

    def describe(self) -> str:
        return f"time between {_hhmm(self.after)} and {_hhmm(self.before)}"


@dataclass(frozen=True)
class Weekday:
    days: frozenset[int]  # 0 = Monday

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        today = home.local_now().weekday()
        ok = today in self.days
        return _record(results, f"{self.describe()} (today is {WEEKDAYS[today]})", ok)

    def describe(self) -> str:
        return "weekday in " + ",".join(WEEKDAYS[d] for d in sorted(self.days))


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        # Every part is evaluated (no short cut) so the trace shows all of them.
        oks = [part.check(event, home, results) for part in self.parts]
        return all(oks)

    def describe(self) -> str:
        return "all of (" + "; ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        oks = [part.check(event, home, results) for part in self.parts]
        return any(oks)

    def describe(self) -> str:
        return "any of (" + "; ".join(p.describe() for p in self.parts) + ")"


@dataclass(frozen=True)
class Not:
    part: Condition

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        ok = not self.part.check(event, home, results)
        return _record(results, self.describe(), ok)

    def describe(self) -> str:
        return f"not ({self.part.describe()})"


@dataclass(frozen=True)
class Code:
    """A plain Python predicate `(event, home) -> bool`."""

    fn: Callable[[Any, Any], Any]
    name: str = field(init=False, repr=False, compare=False)  # what a trace shows

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", str(getattr(self.fn, "__name__", "condition")))

    def check(self, event: Any, home: Any, results: Results | None = None) -> bool:
        ok = bool(self.fn(event, home))
        if results is not None:
            results.append((self.name, ok))
        return ok

    def describe(self) -> str:
        return self.name


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# ---- the Python face -------------------------------------------------------------------


def device_state(
    device: str,
    attribute: str,
    *,
    equals: Any = None,
    not_equals: Any = None,
    in_: Sequence[Any] | None = None,
    above: float | None = None,
    below: float | None = None,
) -> Condition:
    """`device_state("Den", "ambient_c", below=18)`: a device attribute compared to a value."""
    _check_attribute(attribute, DEVICE_ATTRIBUTES, "device")
    ops = {"equals": equals, "not_equals": not_equals, "in": in_, "above": above}
    op, value = _one_op({**ops, "below": below})
    return DeviceState(device, attribute, op, tuple(value) if op == "in" else value)


def structure_state(structure: str, attribute: str, **ops: Any) -> Condition:
    """`structure_state("House", "presence", equals="home")`."""
    _check_attribute(attribute, STRUCTURE_ATTRIBUTES, "structure")
    op, value = _one_op({"in" if k == "in_" else k: v for k, v in ops.items()})
    return StructureState(structure, attribute, op, value)


def presence(value: str, structure: str = "event") -> Condition:
    """`presence("home")`: the structure of the event (or the one named) is home / away."""
    if value not in ("home", "away"):
        raise ConditionError(f"presence is 'home' or 'away', not {value!r}")
    return StructureState(structure, "presence", "equals", value)


def time_between(after: str, before: str) -> Condition:
    """`time_between("22:00", "06:30")`: local time of day in the home's zone."""
    try:
        return TimeWindow(parse_time_of_day(after), parse_time_of_day(before))
    except ValueError as exc:
        raise ConditionError(str(exc)) from None


def weekday(*days: str) -> Condition:
    """`weekday("sat", "sun")`."""
    indexes = set()
    for day in days:
        key = day.strip().lower()[:3]
        if key not in WEEKDAYS:
            raise ConditionError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
        indexes.add(WEEKDAYS.index(key))
    if not indexes:
        raise ConditionError("weekday needs at least one day")
    return Weekday(frozenset(indexes))


def as_condition(value: Condition | Callable[[Any, Any], Any]) -> Condition:
    if hasattr(value, "check") and hasattr(value, "describe"):
        return value
    if callable(value):
        return Code(value)
    raise ConditionError(f"not a condition: {value!r}")


def all_of(*parts: Condition | Callable[[Any, Any], Any]) -> Condition:
    return AllOf(tuple(as_condition(p) for p in parts))


def any_of(*parts: Condition | Callable[[Any, Any], Any]) -> Condition:
    return AnyOf(tuple(as_condition(p) for p in parts))


def not_(part: Condition | Callable[[Any, Any], Any]) -> Condition:
    return Not(as_condition(part))


# ---- the TOML face ---------------------------------------------------------------------


def from_table(table: Any) -> Condition:
    """A TOML condition: a table, or a list of tables that must all hold.

    { device = "Den", attribute = "ambient_c", below = 18 }
    { structure = "event", attribute = "presence", equals = "home" }
    { presence = "away" }            { time = { after = "22:00", before = "06:00" } }
    { weekday = ["sat", "sun"] }     { all = [...] }  { any = [...] }  { not = {...} }
    """
    if isinstance(table, list):
        return AllOf(tuple(from_table(t) for t in table))
    if not isinstance(table, dict) or not table:
        raise ConditionError(
            "a condition is a table, e.g. { device = ..., attribute = ..., below = ... }"
        )
    spec = dict(table)
    for key, build in _COMPOSITES.items():
        if key in spec:
            _only(spec, key)
            return build(spec[key])
    if "presence" in spec:
        where = str(spec.pop("structure", "event"))
        _only(spec, "presence")
        return presence(str(spec["presence"]), where)
    if "time" in spec:
        _only(spec, "time")
        window = spec["time"]
        if not isinstance(window, dict) or set(window) != {"after", "before"}:
            raise ConditionError('time is a table: { after = "22:00", before = "06:00" }')
        return time_between(str(window["after"]), str(window["before"]))
    if "sun" in spec:
        _only(spec, "sun")
        return _sun_table(spec["sun"])
    if "weekday" in spec:
        _only(spec, "weekday")
        days = spec["weekday"]
        if isinstance(days, str):
            return weekday(days)
        if not isinstance(days, list):
            raise ConditionError('weekday is a day or a list of days: weekday = ["sat", "sun"]')
        return weekday(*[str(d) for d in days])
    return _state_table(spec)


def _sun_table(window: Any) -> Condition:
    from roost.rules.sun import sun_between
    from roost.rules.triggers import RuleDefinitionError

    keys = {"after", "before", "after_offset", "before_offset", "structure"}
    if not isinstance(window, dict) or not {"after", "before"} <= set(window) <= keys:
        raise ConditionError('sun is a table: { after = "sunset", before = "sunrise" }')
    try:
        return sun_between(
            str(window["after"]),
            str(window["before"]),
            after_offset=window.get("after_offset", 0),
            before_offset=window.get("before_offset", 0),
            structure=window.get("structure"),
        )
    except RuleDefinitionError as exc:
        raise ConditionError(str(exc)) from None


def _state_table(spec: dict[str, Any]) -> Condition:
    attribute = spec.pop("attribute", None)
    if not isinstance(attribute, str):
        raise ConditionError("a state condition needs an attribute")
    ops = {op: spec.pop(op) for op in list(spec) if op in OPS}
    op, value = _one_op(ops)
    if "structure" in spec:
        ref = str(spec.pop("structure"))
        _no_leftovers(spec)
        _check_attribute(attribute, STRUCTURE_ATTRIBUTES, "structure")
        return StructureState(ref, attribute, op, value)
    ref = str(spec.pop("device", "event"))
    _no_leftovers(spec)
    _check_attribute(attribute, DEVICE_ATTRIBUTES, "device")
    return DeviceState(ref, attribute, op, tuple(value) if op == "in" else value)


def _only(spec: dict[str, Any], key: str) -> None:
    _no_leftovers({k: v for k, v in spec.items() if k != key})


def _no_leftovers(spec: dict[str, Any]) -> None:
    if spec:
        raise ConditionError(f"unknown condition key {sorted(spec)[0]!r}")


def _parts(value: Any, key: str) -> tuple[Condition, ...]:
    if not isinstance(value, list) or not value:
        raise ConditionError(f"{key!r} takes a list of conditions")
    return tuple(from_table(v) for v in value)


_COMPOSITES: dict[str, Callable[[Any], Condition]] = {
    "all": lambda v: AllOf(_parts(v, "all")),
    "any": lambda v: AnyOf(_parts(v, "any")),
    "not": lambda v: Not(from_table(v)),
}
