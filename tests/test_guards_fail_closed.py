"""Guards fail closed: a value a guard needs that is unknown or not finite refuses the
command, with that reason (the reported hole: a current setpoint of 1e309 let a heat
raise through during a CO emergency). Checked on `guards.check` with real model objects."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from roost.commands.guards import Limits, check
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
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
ODD = [None, math.nan, math.inf, -math.inf, float("1e309"), 1e6, -1e6]


def command(action: Action, target: str = "t") -> Command:
    return Command("c1", "a", target, action, NOW, NOW + timedelta(minutes=5), rule="r")


def thermostat(**values: Any) -> Thermostat:
    base: dict[str, Any] = {"id": "t", "name": "Den", "structure_id": "s", "mode": "heat"}
    base.update(values)
    base["mode"] = ThermostatMode(base["mode"])
    return Thermostat(**base)


def alarm(co: str = "ok", smoke: str = "ok") -> SmokeCoAlarm:
    return SmokeCoAlarm(
        id="p", name="Hall", structure_id="s", co=AlarmState(co), smoke=AlarmState(smoke)
    )


def test_a_non_finite_current_setpoint_during_a_co_alarm_refuses_a_heat_raise() -> None:
    t = thermostat(heat_setpoint_c=float("1e309"))
    refusal = check(command(SetHeat(24.0)), t, [t, alarm(co="emergency")], Limits())
    assert refusal is not None
    assert refusal.guard == "alarm"
    assert "heat setpoint of 'Den' is not a finite number (inf)" in refusal.reason


def test_an_absurd_current_setpoint_during_an_alarm_refuses_a_heat_raise() -> None:
    t = thermostat(mode="heat-cool", heat_setpoint_c=1000.0, cool_setpoint_c=16.5)
    refusal = check(command(SetRange(17.5, 19.0)), t, [t, alarm(co="warning")], Limits())
    assert refusal is not None
    assert "not a plausible temperature (1000 °C)" in refusal.reason


def test_the_same_command_with_a_known_lower_setpoint_is_allowed_only_without_an_alarm() -> None:
    t = thermostat(heat_setpoint_c=25.0)
    assert check(command(SetHeat(24.0)), t, [t, alarm(co="emergency")], Limits()) is None
    t = thermostat(heat_setpoint_c=float("1e309"))
    assert check(command(SetHeat(24.0)), t, [t, alarm()], Limits()) is None


def test_non_finite_arguments_are_refused() -> None:
    t = thermostat(heat_setpoint_c=20.0)
    for action in (SetHeat(math.nan), SetCool(math.inf), SetRange(20.0, float("1e309"))):
        refusal = check(command(action), t, [t], Limits())
        assert refusal is not None, action
        assert refusal.guard == "arguments", action
    refusal = check(command(SetFanTimer(10**9)), t, [t], Limits())
    assert refusal is not None
    assert refusal.guard == "arguments"


def test_an_unknown_range_or_online_flag_refuses() -> None:
    t = thermostat(heat_setpoint_c=20.0, allowed_range_c=(9.0, math.nan))
    refusal = check(command(SetHeat(21.0)), t, [t], Limits())
    assert refusal is not None
    assert refusal.guard == "device_range"
    t = thermostat(online=None)
    refusal = check(command(SetHeat(21.0)), t, [t], Limits())
    assert refusal is not None
    assert refusal.guard == "online"
    assert "unknown" in refusal.reason


# ---- the property ------------------------------------------------------------------------

current = st.sampled_from(ODD) | st.floats(min_value=5, max_value=35)
argument = st.sampled_from(ODD[1:]) | st.floats(min_value=0, max_value=40)
actions = st.one_of(
    st.builds(SetHeat, argument),
    st.builds(SetCool, argument),
    st.builds(SetRange, argument, argument),
    st.builds(SetMode, st.sampled_from(list(ThermostatMode))),
    st.builds(SetEco, st.booleans()),
    st.builds(SetFanTimer, st.sampled_from([0, 15, -1, 10**6])),
    st.builds(SetPresence, st.sampled_from(list(Presence))),
)
levels = st.sampled_from(["ok", "ok", "warning", "emergency"])


def finite(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def plausible(value: object) -> bool:
    return finite(value) and -50 <= value <= 100  # type: ignore[operator]


def starts_air(action: Action, t: Thermostat) -> bool:
    """The oracle, from the invariant: during an alarm nothing may start air; a setpoint
    change is only harmless if it provably lowers heating / raises cooling demand."""
    match action:
        case SetHeat(celsius=c):
            return not (plausible(t.heat_setpoint_c) and c <= t.heat_setpoint_c)  # type: ignore[operator]
        case SetCool(celsius=c):
            return not (plausible(t.cool_setpoint_c) and c >= t.cool_setpoint_c)  # type: ignore[operator]
        case SetRange(heat_celsius=h, cool_celsius=c):
            return starts_air(SetHeat(h), t) or starts_air(SetCool(c), t)
        case SetMode(mode=ThermostatMode.OFF) | SetFanTimer(minutes=0):
            return False
        case SetMode(mode=ThermostatMode.ECO) | SetEco(on=True):
            return t.mode is ThermostatMode.OFF
        case SetEco(on=False):
            return t.mode is ThermostatMode.ECO
        case SetPresence(presence=p):
            return p is Presence.HOME
    return True


@given(
    action=actions,
    mode=st.sampled_from(list(ThermostatMode)),
    heat=current,
    cool=current,
    co=levels,
    smoke=levels,
)
def test_every_command_kind_with_any_current_value_fails_closed(
    action: Action, mode: ThermostatMode, heat: Any, cool: Any, co: str, smoke: str
) -> None:
    t = thermostat(mode=mode, heat_setpoint_c=heat, cool_setpoint_c=cool, can_cool=True)
    house = Structure(id="s", name="Home")
    target = house if isinstance(action, SetPresence) else t
    refusal = check(command(action, target.id), target, [t, alarm(co, smoke)], Limits())
    if refusal is not None:
        return
    for value in (getattr(action, n, None) for n in ("celsius", "heat_celsius", "cool_celsius")):
        assert value is None or finite(value), (action, "non-finite argument accepted")
    if co != "ok" or smoke != "ok":
        assert not starts_air(action, t), (action, t, "air started during an alarm")
