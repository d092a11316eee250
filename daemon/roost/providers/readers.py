"""Typed readers for vendor payload fields that never raise on what the cloud sends.

Every normalizer reads a device's fields through `Fields`. A value that is missing,
of the wrong type, not in the allowed set, not finite or physically impossible becomes
`None` (the model's "unknown") and is noted as a `Problem` in the normalization's
`Problems`: one odd field costs one attribute of one device, never the whole payload.
Missing (or null) optional values are not problems; they are simply unknown.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from roost.core.model import ThermostatMode

V = TypeVar("V")

CELSIUS: Final = (-50.0, 100.0)  # any temperature a home can report
PERCENT: Final = (0.0, 100.0)
_SHOWN_CHARS = 40
_FRACTION = re.compile(r"\.(\d+)")


@dataclass(frozen=True, slots=True)
class Problem:
    """One field of one device (or structure) that could not be read."""

    target: str
    field: str
    kind: str  # "unknown value", "wrong type", "not finite", "out of range"
    value: str  # a short rendering of what came, for the log

    def describe(self) -> str:
        return f"{self.target} {self.field}: {self.kind} ({self.value})"


class Problems:
    """What one normalization read (device and structure ids) and could not read."""

    __slots__ = ("found", "read")

    def __init__(self) -> None:
        self.read: set[str] = set()
        self.found: list[Problem] = []

    def note(self, target: str, field: str, kind: str, value: Any) -> None:
        self.found.append(Problem(target, field, kind, shown(value)))

    def fields(self, raw: Any, target: str, prefix: str = "") -> Fields:
        """A reader over one device's (or structure's) raw object."""
        self.read.add(target)
        fields = Fields(raw, target, self, prefix)
        if raw is not None and not isinstance(raw, Mapping):
            self.note(target, prefix.rstrip(".") or "(object)", "wrong type", raw)
        return fields

    def repeat(self, target: str, problems: Iterable[Problem]) -> None:
        """`target` read again, with these findings (known without reading it all)."""
        self.read.add(target)
        self.found.extend(problems)

    def extend(self, other: Problems) -> None:
        self.read |= other.read
        self.found.extend(other.found)


def shown(value: Any) -> str:
    """A short, single-line rendering of a raw value (never the whole of a huge one)."""
    if isinstance(value, Mapping):
        return f"an object of {len(value)} keys"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return "a huge integer"
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


class Fields:
    """The fields of one raw object, read for one target; bad values noted, never raised."""

    __slots__ = ("_problems", "_raw", "prefix", "target")

    def __init__(self, raw: Any, target: str, problems: Problems, prefix: str = "") -> None:
        self._raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        self.target = target
        self._problems = problems
        self.prefix = prefix

    def raw(self, key: str, default: Any = None) -> Any:
        return self._raw.get(key, default)

    def has(self, key: str) -> bool:
        return self._raw.get(key) is not None

    def bad(self, key: str, kind: str, value: Any) -> None:
        """Note a problem with `key` found by the caller's own check."""
        self._problems.note(self.target, self.prefix + key, kind, value)

    def child(self, key: str) -> Fields:
        """The nested object at `key` (empty when missing; noted when not an object)."""
        value = self._raw.get(key)
        if value is not None and not isinstance(value, Mapping):
            self.bad(key, "wrong type", value)
        return Fields(value, self.target, self._problems, f"{self.prefix}{key}.")

    def children(self, key: str) -> Iterator[Mapping[str, Any]]:
        """The objects of the list at `key`; a non-list or a non-object item is noted."""
        value = self._raw.get(key)
        if value is None:
            return
        if not isinstance(value, list):
            self.bad(key, "wrong type", value)
            return
        for item in value:
            if isinstance(item, Mapping):
                yield item
            else:
                self.bad(key, "wrong type", item)

    def enum(
        self, key: str, table: Mapping[str, V], default: str | None = None, *, fold: bool = False
    ) -> V | None:
        """The table's value for the string at `key` (lower-cased first with `fold`);
        `default` stands for a missing key."""
        value = self._typed(key, str) if key in self._raw else default
        if value is None:
            return None
        found = table.get(value.lower() if fold else value)
        if found is None:
            self.bad(key, "unknown value", value)
        return found

    def number(self, key: str, low: float, high: float) -> float | None:
        """A finite number within [low, high]; None when missing or unusable."""
        return self.checked(key, self._raw.get(key), low, high)

    def checked(self, key: str, value: Any, low: float, high: float) -> float | None:
        """`value` (read from `key`) as a finite number within [low, high], or None."""
        if value is None:
            return None
        number = finite(value)
        if number is None:
            kind = (
                "wrong type"
                if not _is_number(value)
                else "out of range"
                if isinstance(value, int)
                else "not finite"
            )
            self.bad(key, kind, value)
            return None
        if not low <= number <= high:
            self.bad(key, "out of range", value)
            return None
        return number

    def celsius(self, key: str) -> float | None:
        return self.number(key, *CELSIUS)

    def fahrenheit(self, key: str) -> float | None:
        """A °F reading, as °C (the range is checked in °C)."""
        value = self._raw.get(key)
        number = finite(value) if value is not None else None
        if number is None:
            return self.checked(key, value, *CELSIUS)  # notes the problem, if any
        return self.checked(key, (number - 32.0) * 5.0 / 9.0, *CELSIUS)

    def percent(self, key: str) -> float | None:
        return self.number(key, *PERCENT)

    def integer(self, key: str, low: int, high: int) -> int | None:
        value = self._typed(key, int)
        if value is not None and not low <= value <= high:
            self.bad(key, "out of range", value)
            return None
        return value

    def flag(self, key: str, default: bool | None = None) -> bool | None:
        """A boolean; `default` for a missing key, None (noted) for anything else."""
        return default if self._raw.get(key) is None else self._typed(key, bool)

    def text(self, key: str) -> str | None:
        """A non-empty string, or None (a non-string is noted)."""
        return self._typed(key, str) or None

    def _typed(self, key: str, kind: type[V]) -> V | None:
        """The value at `key` if it is a `kind` (a bool is no int): None when missing,
        noted when of another type."""
        value = self._raw.get(key)
        if value is None or (isinstance(value, kind) and (kind is bool) == isinstance(value, bool)):
            return value
        self.bad(key, "wrong type", value)
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: Any) -> float | None:
    """`value` as a finite float: None for non-numbers, NaN, ±inf and ints beyond float."""
    if not _is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond 1e308
        return None
    return number if math.isfinite(number) else None


def active_setpoints(
    fields: Fields,
    mode: ThermostatMode | None,
    keys: tuple[str, str, str, str],
    eco: tuple[float | None, float | None] | None,
) -> tuple[float | None, float | None]:
    """The (heat, cool) setpoints a thermostat holds in `mode`, read from `fields` under
    `keys` = (heat, cool, heat-cool low, heat-cool high); in eco mode the `eco` pair."""
    heat, cool, low, high = keys
    if mode is ThermostatMode.HEAT:
        return fields.celsius(heat), None
    if mode is ThermostatMode.COOL:
        return None, fields.celsius(cool)
    if mode is ThermostatMode.HEAT_COOL:
        return fields.celsius(low), fields.celsius(high)
    if mode is ThermostatMode.ECO:
        return eco if eco is not None else (None, None)
    return None, None  # off, or unknown


def eco_or(eco_on: bool | None, mode: Callable[[], ThermostatMode | None]) -> ThermostatMode | None:
    """A thermostat's mode where eco is a switch beside the mode: ECO while it is on,
    unknown while that is unknown, else `mode()` (read only then)."""
    if eco_on is None:
        return None
    return ThermostatMode.ECO if eco_on else mode()


def pair(low: float | None, high: float | None) -> tuple[float, float] | None:
    """A (low, high) range, or None unless both ends are known."""
    return None if low is None or high is None else (low, high)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (`Z`, any number of fractional digits), as aware UTC; else None."""
    if not isinstance(value, str) or not value:
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), value, count=1)
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # an offset can push year 1 or 9999 out of range
        return None
