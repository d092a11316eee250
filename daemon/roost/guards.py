"""Safety guards: invariants every command must keep, whichever rule asked for it.

The guards are a declarative table: a name, the reason a person reads when a command is
refused, and a check against the current normalized state. They are vendor-independent
where the physics is; a vendor's own constraints stay in its provider.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from roost.commands import (
    Action,
    Command,
    SetCool,
    SetEco,
    SetFanTimer,
    SetHeat,
    SetMode,
    SetPresence,
    SetRange,
)
from roost.model import AlarmState, Device, SmokeCoAlarm, Structure, Thermostat, ThermostatMode


@dataclass(frozen=True)
class Limits:
    """The house-wide safe band and budgets (from the `[guards]` settings)."""

    heat_min_c: float = 7.0
    heat_max_c: float = 30.0
    cool_min_c: float = 18.0
    cool_max_c: float = 35.0
    min_range_gap_c: float = 1.5
    writes_per_device_per_hour: int = 20


@dataclass
class Subject:
    """What a guard looks at: the command, its target, and the rest of the structure."""

    command: Command
    target: Structure | Device | None
    neighbours: list[Device]
    limits: Limits
    recent_writes: int


@dataclass(frozen=True)
class Refusal:
    guard: str
    reason: str


@dataclass(frozen=True)
class Guard:
    name: str
    reason: str
    violated: Callable[[Subject], str | None]


def _heat(action: Action) -> float | None:
    if isinstance(action, SetHeat):
        return action.celsius
    if isinstance(action, SetRange):
        return action.heat_celsius
    return None


def _cool(action: Action) -> float | None:
    if isinstance(action, SetCool):
        return action.celsius
    if isinstance(action, SetRange):
        return action.cool_celsius
    return None


def _setpoints(action: Action) -> list[float]:
    return [v for v in (_heat(action), _cool(action)) if v is not None]


def _fits_target(s: Subject) -> str | None:
    action, target = s.command.action, s.target
    if target is None:
        return f"no device or structure {s.command.target!r}"
    if isinstance(action, SetPresence):
        return None if isinstance(target, Structure) else "presence applies to a structure"
    if not isinstance(target, Thermostat):
        return f"{target.name!r} is not a thermostat"
    return None


def _online(s: Subject) -> str | None:
    if isinstance(s.target, Device) and not s.target.online:
        return f"{s.target.name!r} is offline"
    return None


def _device_range(s: Subject) -> str | None:
    if not isinstance(s.target, Thermostat):
        return None
    low, high = s.target.allowed_range_c
    bad = [v for v in _setpoints(s.command.action) if not low <= v <= high]
    return f"{bad[0]:g} °C is outside the device's range {low:g}–{high:g} °C" if bad else None


def _safe_band(s: Subject) -> str | None:
    heat, cool, lim = _heat(s.command.action), _cool(s.command.action), s.limits
    if heat is not None and not lim.heat_min_c <= heat <= lim.heat_max_c:
        return f"heat {heat:g} °C is outside the safe band {lim.heat_min_c:g}–{lim.heat_max_c:g} °C"
    if cool is not None and not lim.cool_min_c <= cool <= lim.cool_max_c:
        return f"cool {cool:g} °C is outside the safe band {lim.cool_min_c:g}–{lim.cool_max_c:g} °C"
    return None


def _cools(action: Action) -> bool:
    if isinstance(action, SetMode):
        return action.mode in (ThermostatMode.COOL, ThermostatMode.HEAT_COOL)
    return isinstance(action, SetCool | SetRange)


def _no_cooling_with_emergency_heat(s: Subject) -> str | None:
    if isinstance(s.target, Thermostat) and s.target.emergency_heat and _cools(s.command.action):
        return "emergency heat is on"
    return None


def _lock(s: Subject) -> str | None:
    t = s.target
    if not isinstance(t, Thermostat) or not t.locked or t.locked_range_c is None:
        return None
    low, high = t.locked_range_c
    bad = [v for v in _setpoints(s.command.action) if not low <= v <= high]
    return f"{bad[0]:g} °C is outside the locked range {low:g}–{high:g} °C" if bad else None


def _turns_air_on(action: Action) -> bool:
    if isinstance(action, SetFanTimer):
        return action.minutes > 0
    if isinstance(action, SetMode):
        return action.mode not in (ThermostatMode.OFF, ThermostatMode.ECO)
    return isinstance(action, SetEco) and not action.on


def _no_air_during_alarm(s: Subject) -> str | None:
    if not _turns_air_on(s.command.action):
        return None
    for d in s.neighbours:
        if isinstance(d, SmokeCoAlarm) and (d.smoke != AlarmState.OK or d.co != AlarmState.OK):
            return f"{d.name!r} reports smoke {d.smoke}, CO {d.co}"
    return None


def _range_gap(s: Subject) -> str | None:
    action = s.command.action
    if isinstance(action, SetRange):
        gap = action.cool_celsius - action.heat_celsius
        if gap < s.limits.min_range_gap_c:
            return f"a {gap:g} °C gap is below the minimum {s.limits.min_range_gap_c:g} °C"
    return None


def _write_budget(s: Subject) -> str | None:
    budget = s.limits.writes_per_device_per_hour
    if s.recent_writes >= budget:
        return f"{s.recent_writes} writes in the last hour (budget {budget})"
    return None


GUARDS: tuple[Guard, ...] = (
    Guard("target", "the action does not apply to this target", _fits_target),
    Guard("online", "a command to an offline device would land at a surprising time", _online),
    Guard("device_range", "the device cannot hold this setpoint", _device_range),
    Guard("safe_band", "the setpoint is outside the house-wide safe band", _safe_band),
    Guard(
        "emergency_heat", "no cooling while emergency heat is on", _no_cooling_with_emergency_heat
    ),
    Guard("lock", "the thermostat is locked to a range", _lock),
    Guard("alarm", "no fan or HVAC start during a smoke or CO alarm", _no_air_during_alarm),
    Guard("range_gap", "heat and cool setpoints need a minimum gap", _range_gap),
    Guard("write_budget", "too many writes to one device", _write_budget),
)


@dataclass
class WriteBudget:
    """Writes accepted per device in the last hour (a sliding window)."""

    window_s: float = 3600.0
    _writes: dict[str, deque[float]] = field(default_factory=dict)

    def count(self, device: str, now: float | None = None) -> int:
        stamps = self._writes.get(device)
        if not stamps:
            return 0
        horizon = (now if now is not None else time.monotonic()) - self.window_s
        while stamps and stamps[0] < horizon:
            stamps.popleft()
        return len(stamps)

    def record(self, device: str, now: float | None = None) -> None:
        stamp = now if now is not None else time.monotonic()
        self._writes.setdefault(device, deque()).append(stamp)


def check(
    command: Command,
    target: Structure | Device | None,
    neighbours: Iterable[Device],
    limits: Limits,
    recent_writes: int = 0,
    guards: tuple[Guard, ...] = GUARDS,
) -> Refusal | None:
    """The first guard the command violates, or None when it may go."""
    subject = Subject(command, target, list(neighbours), limits, recent_writes)
    for guard in guards:
        detail = guard.violated(subject)
        if detail is not None:
            return Refusal(guard.name, f"{guard.reason}: {detail}")
    return None
