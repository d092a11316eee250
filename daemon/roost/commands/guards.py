"""Safety guards: invariants every command must keep, whichever rule asked for it.

The guards are a declarative table: a name, the reason a person reads when a command is
refused, and a check against the current normalized state. They fail closed: a value a
guard needs that is unknown (None) or not a finite number refuses the command with that
reason, and so does a guard that raises. They are vendor-independent
where the physics is; a vendor's own constraints stay in its provider. The dispatcher
checks them when a command is submitted and again just before every vendor write, so a
command that waited (queue, rate limit, back-off) is judged by the house as it is then.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from roost.core.commands import (
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
from roost.core.model import (
    AlarmState,
    Device,
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)


@dataclass(frozen=True)
class Limits:
    """The house-wide safe band and budgets (from the `[guards]` settings)."""

    heat_min_c: float = 7.0
    heat_max_c: float = 30.0
    cool_min_c: float = 18.0
    cool_max_c: float = 35.0
    min_range_gap_c: float = 1.5
    writes_per_device_per_hour: int = 20


class Subject:
    """What a guard looks at: the command, its target, and the rest of the structure; and
    what every guard would otherwise work out again (the setpoints the command asks for,
    the target as a thermostat), read once for all the guards."""

    __slots__ = (
        "action",
        "command",
        "cool",
        "heat",
        "limits",
        "neighbours",
        "recent_writes",
        "setpoints",
        "target",
        "thermostat",
    )

    def __init__(
        self,
        command: Command,
        target: Structure | Device | None,
        neighbours: list[Device],
        limits: Limits,
        recent_writes: int,
    ) -> None:
        self.command = command
        self.action = action = command.action
        self.target = target
        self.thermostat = target if isinstance(target, Thermostat) else None
        self.neighbours = neighbours
        self.limits = limits
        self.recent_writes = recent_writes
        heat: float | None
        cool: float | None
        if type(action) is SetHeat:  # the common command: no reader calls
            heat, cool = action.celsius, None
        else:
            heat, cool = _heat(action), _cool(action)
        self.heat, self.cool = heat, cool
        if cool is None:
            self.setpoints: tuple[float, ...] = () if heat is None else (heat,)
        else:
            self.setpoints = (cool,) if heat is None else (heat, cool)


@dataclass(frozen=True)
class Refusal:
    guard: str
    reason: str


@dataclass(frozen=True)
class Guard:
    name: str
    reason: str
    violated: Callable[[Subject], str | None]


class Unknown(Exception):
    """A value the guard needs cannot be read: the command is refused, with this reason."""


_NAMELESS = object()  # `what` names the value by itself
# isinstance with a tuple: `int | float` would build a union object on every check.
_NUMBER = (int, float)
_PAIR = (tuple, list)
_COOLING = (SetCool, SetRange)


def _said(what: str, of: object) -> str:
    """The name of the value a guard reads: `what` names it, with `{!r}` standing for `of`
    (a device's name). Built only for a refusal's reason, never on the passing path."""
    return what if of is _NAMELESS else what.format(of)


_FLOAT_MAX = sys.float_info.max


def _number(value: object, what: str, of: object = _NAMELESS) -> float:
    """`value` as a finite float, or Unknown (None, NaN, ±inf, 1e309, not a number)."""
    if type(value) is float and -_FLOAT_MAX <= value <= _FLOAT_MAX:  # NaN fails both
        return value
    if value is None:
        raise Unknown(f"{_said(what, of)} is unknown")
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise Unknown(f"{_said(what, of)} is not a number ({value!r})")
    if not math.isfinite(value):
        raise Unknown(f"{_said(what, of)} is not a finite number ({value!r})")
    return float(value)


PLAUSIBLE_C = (-50.0, 100.0)  # a temperature outside this is a broken report, not a home


def _celsius(value: object, what: str, of: object = _NAMELESS) -> float:
    """A current temperature the guard compares with: finite and physically plausible."""
    celsius = _number(value, what, of)
    if not PLAUSIBLE_C[0] <= celsius <= PLAUSIBLE_C[1]:
        raise Unknown(f"{_said(what, of)} is not a plausible temperature ({celsius:g} °C)")
    return celsius


def _flag(value: object, what: str, of: object = _NAMELESS) -> bool:
    if value is True or value is False:  # isinstance(value, bool), without the call
        return value
    raise Unknown(f"{_said(what, of)} is unknown")


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


# ---- the checks ------------------------------------------------------------------------

MAX_FAN_MINUTES = 24 * 60


def _not_one_of(
    value: object, kind: type[ThermostatMode] | type[Presence], what: str
) -> str | None:
    return None if isinstance(value, kind) else f"unknown {what} {value!r}"


def _valid_arguments(s: Subject) -> str | None:
    """The command's own values: finite setpoints, known modes, a sane fan duration."""
    action = s.action
    match action:
        case SetHeat(celsius=value) | SetCool(celsius=value):
            _number(value, "the setpoint")
        case SetRange(heat_celsius=heat, cool_celsius=cool):
            _number(heat, "the heat setpoint")
            _number(cool, "the cool setpoint")
        case SetFanTimer(minutes=minutes):
            if isinstance(minutes, bool) or not isinstance(minutes, int):
                return f"fan minutes {minutes!r} is not a whole number"
            if not 0 <= minutes <= MAX_FAN_MINUTES:
                return f"fan minutes {minutes} is outside 0–{MAX_FAN_MINUTES}"
        case SetMode(mode=mode):
            return _not_one_of(mode, ThermostatMode, "mode")
        case SetEco(on=on):
            return None if isinstance(on, bool) else f"eco {on!r} is not true or false"
        case SetPresence(presence=presence):
            return _not_one_of(presence, Presence, "presence")
    return None


def _fits_target(s: Subject) -> str | None:
    action, target = s.action, s.target
    if target is None:
        return f"no device or structure {s.command.target!r}"
    if isinstance(action, SetPresence):
        return None if isinstance(target, Structure) else "presence applies to a structure"
    if not isinstance(target, Thermostat):
        return f"{target.name!r} is not a thermostat"
    return None


def _online(s: Subject) -> str | None:
    if isinstance(s.target, Device) and not _flag(
        s.target.online, "whether {!r} is online", s.target.name
    ):
        return f"{s.target.name!r} is offline"
    return None


def _device_range(s: Subject) -> str | None:
    t = s.thermostat
    if t is None or not s.setpoints:
        return None
    low, high = _pair(t.allowed_range_c, "the range of {!r}", t.name)
    for v in s.setpoints:
        if not low <= v <= high:
            return f"{v:g} °C is outside the device's range {low:g}–{high:g} °C"
    return None


def _pair(value: object, what: str, of: object = _NAMELESS) -> tuple[float, float]:
    if type(value) is tuple and len(value) == 2:  # the common case, as `_number` reads it
        low, high = value
        if (
            type(low) is float
            and type(high) is float
            and -_FLOAT_MAX <= low <= _FLOAT_MAX
            and -_FLOAT_MAX <= high <= _FLOAT_MAX
        ):
            return low, high
    if not isinstance(value, _PAIR) or len(value) != 2:
        raise Unknown(f"{_said(what, of)} is unknown")
    return _number(value[0], what, of), _number(value[1], what, of)


def _safe_band(s: Subject) -> str | None:
    heat, cool, lim = s.heat, s.cool, s.limits
    if heat is not None and not lim.heat_min_c <= heat <= lim.heat_max_c:
        return f"heat {heat:g} °C is outside the safe band {lim.heat_min_c:g}–{lim.heat_max_c:g} °C"
    if cool is not None and not lim.cool_min_c <= cool <= lim.cool_max_c:
        return f"cool {cool:g} °C is outside the safe band {lim.cool_min_c:g}–{lim.cool_max_c:g} °C"
    return None


def _cools(action: Action, t: Thermostat) -> bool:
    if isinstance(action, SetMode):
        return action.mode in (ThermostatMode.COOL, ThermostatMode.HEAT_COOL)
    if isinstance(action, SetEco):  # leaving eco restores a mode roost may not know
        # an unknown mode or can_cool counts as "may cool" (fail closed)
        return not action.on and t.mode in (None, ThermostatMode.ECO) and t.can_cool is not False
    return isinstance(action, _COOLING)


def _no_cooling_with_emergency_heat(s: Subject) -> str | None:
    t = s.thermostat
    if t is None or not _cools(s.action, t):
        return None
    if _flag(t.emergency_heat, "whether emergency heat is on at {!r}", t.name):
        return "emergency heat is on"
    return None


def _lock(s: Subject) -> str | None:
    t = s.thermostat
    setpoints = s.setpoints
    if t is None or not setpoints or not _flag(t.locked, "whether {!r} is locked", t.name):
        return None
    if t.locked_range_c is None:
        return f"{t.name!r} is locked and its locked range is unknown"
    low, high = _pair(t.locked_range_c, "the locked range of {!r}", t.name)
    bad = [v for v in setpoints if not low <= v <= high]
    return f"{bad[0]:g} °C is outside the locked range {low:g}–{high:g} °C" if bad else None


def _starts_air(action: Action, target: Structure | Device | None) -> bool:
    """Could this action start a fan, heating or cooling (from the target's current state)?"""
    t = target if isinstance(target, Thermostat) else None
    mode = t.mode if t is not None else None
    match action:
        case SetFanTimer(minutes=minutes):
            return minutes > 0
        case SetMode(mode=ThermostatMode.OFF):
            return False
        case SetMode(mode=ThermostatMode.ECO) | SetEco(on=True):
            return mode in (None, ThermostatMode.OFF)  # eco from off holds a range again
        case SetMode():
            return True
        case SetEco(on=False):
            return mode in (None, ThermostatMode.ECO)  # leaving eco restores a mode
        case SetPresence(presence=presence):
            return presence is Presence.HOME  # coming home ends eco
    return _raises_demand(action, t)


def _raises_demand(action: Action, t: Thermostat | None) -> bool:
    """A higher heat or a lower cool setpoint may start the equipment."""
    heat, cool = _heat(action), _cool(action)
    if t is None:
        return heat is not None or cool is not None
    # The comparison needs the current setpoint: unknown or not finite refuses (Unknown).
    if heat is not None and heat > _celsius(t.heat_setpoint_c, "the heat setpoint of {!r}", t.name):
        return True
    return cool is not None and cool < _celsius(
        t.cool_setpoint_c, "the cool setpoint of {!r}", t.name
    )


def _alarm_in(neighbours: list[Device]) -> str | None:
    """Why the structure is in alarm (an unknown alarm state counts as one), or None."""
    for d in neighbours:
        if isinstance(d, SmokeCoAlarm) and (d.smoke != AlarmState.OK or d.co != AlarmState.OK):
            return f"{d.name!r} reports smoke {d.smoke or 'unknown'}, CO {d.co or 'unknown'}"
    return None


def _no_air_during_alarm(s: Subject) -> str | None:
    alarm = _alarm_in(s.neighbours)
    if alarm is None or not _starts_air(s.action, s.target):
        return None
    return alarm


def _range_after(s: Subject) -> tuple[float, float] | None:
    """The heat and cool setpoints a heat-cool thermostat would hold after the command."""
    action, t = s.action, s.thermostat
    if isinstance(action, SetRange):
        return action.heat_celsius, action.cool_celsius
    if t is None or t.mode is not ThermostatMode.HEAT_COOL:
        return None
    heat, cool = s.heat, s.cool
    if heat is None and cool is None:
        return None
    heat = (
        heat
        if heat is not None
        else _celsius(t.heat_setpoint_c, "the heat setpoint of {!r}", t.name)
    )
    cool = (
        cool
        if cool is not None
        else _celsius(t.cool_setpoint_c, "the cool setpoint of {!r}", t.name)
    )
    return heat, cool


def _range_gap(s: Subject) -> str | None:
    after = _range_after(s)
    if after is None:
        return None
    gap = after[1] - after[0]
    if gap < s.limits.min_range_gap_c:
        return (
            f"heat {after[0]:g} °C and cool {after[1]:g} °C leave a {gap:g} °C gap, "
            f"below the minimum {s.limits.min_range_gap_c:g} °C"
        )
    return None


def _write_budget(s: Subject) -> str | None:
    budget = s.limits.writes_per_device_per_hour
    if s.recent_writes >= budget:
        return f"{s.recent_writes} writes in the last hour (budget {budget})"
    return None


GUARDS: tuple[Guard, ...] = (
    Guard("arguments", "the command's values are not valid", _valid_arguments),
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
    """Writes sent per device in the last hour (a sliding window on a monotonic clock)."""

    window_s: float = 3600.0
    # device → its write times; empty until a first write (then every count is 0 unread)
    writes: dict[str, deque[float]] = field(default_factory=dict)

    def count(self, device: str, now: float) -> int:
        stamps = self.writes.get(device)
        if not stamps:
            return 0
        horizon = now - self.window_s
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        return len(stamps)

    def record(self, device: str, now: float) -> None:
        self.writes.setdefault(device, deque()).append(now)


# ---- the passing path, for a heat or a cool setpoint ---------------------------------
# A setpoint to a thermostat in a quiet house passes every guard, and reading that through
# the table (a Subject, ten calls, a `try` per guard) was most of a check's cost.
# `clearly_passes` reads what the table's guards read and says True only when every one
# of them passes with nothing unknown. Anything else (a value out of bounds, unknown or not a
# plain float, an alarm, a lock, heat-cool mode, an exception) goes to the table, which
# refuses or passes it and says why: this path never refuses and never passes more.


_HEAT_COOL = ThermostatMode.HEAT_COOL  # read once: a member read through its enum is a lookup
_OK = AlarmState.OK


def clearly_passes(
    action: Action, t: Structure | Device | None, around: list[Device], lim: Limits, recent: int
) -> bool:
    """A heat or a cool setpoint (no other kind has a passing path) passes every guard."""
    kind = type(action)
    try:
        if kind is SetHeat:  # emergency_heat: a heat setpoint never cools, so it is not read
            band_min, band_max, cools = lim.heat_min_c, lim.heat_max_c, False
        elif kind is SetCool:
            band_min, band_max, cools = lim.cool_min_c, lim.cool_max_c, True
        else:
            return False
        v = action.celsius  # type: ignore[attr-defined]  # (no `cast` call)
        if type(v) is not float or not isinstance(t, Thermostat):
            return False
        r = t.allowed_range_c
        return (
            -_FLOAT_MAX <= v <= _FLOAT_MAX  # arguments
            and band_min <= v <= band_max  # safe_band
            and t.online is True  # online
            and (not cools or t.emergency_heat is False)  # emergency_heat
            and t.locked is False  # lock
            and t.mode is not _HEAT_COOL  # range_gap (it reads both setpoints)
            and type(r) is tuple  # device_range: a plain pair of finite floats that holds v
            and len(r) == 2
            and type(r[0]) is float
            and type(r[1]) is float
            and -_FLOAT_MAX <= r[0] <= v <= r[1] <= _FLOAT_MAX
            and recent < lim.writes_per_device_per_hour  # write_budget
            and (not around or _quiet(around))  # alarm
        )
    except Exception:  # an odd value: the table decides, and says why
        return False


def _quiet(neighbours: list[Device]) -> bool:
    """No alarm in the structure, as `_alarm_in` reads it."""
    for d in neighbours:
        if isinstance(d, SmokeCoAlarm) and (d.smoke != _OK or d.co != _OK):
            return False
    return True


def check(
    command: Command,
    target: Structure | Device | None,
    neighbours: Iterable[Device],
    limits: Limits,
    recent_writes: int = 0,
    guards: tuple[Guard, ...] = GUARDS,
) -> Refusal | None:
    """The first guard the command violates, or None when it may go."""
    if (
        guards is GUARDS
        and type(neighbours) is list
        and clearly_passes(command.action, target, neighbours, limits, recent_writes)
    ):
        return None
    around = neighbours if isinstance(neighbours, list) else list(neighbours)
    subject = Subject(command, target, around, limits, recent_writes)
    for guard in guards:
        try:
            detail = guard.violated(subject)
        except Unknown as unknown:
            detail = f"{unknown} (a guard refuses what it cannot check)"
        except Exception as exc:  # a guard that cannot decide says no
            detail = f"the check failed ({type(exc).__name__}: {exc})"
        if detail is not None:
            return Refusal(guard.name, f"{guard.reason}: {detail}")
    return None
