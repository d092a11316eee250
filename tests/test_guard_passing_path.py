"""The guards' passing path (one per setpoint kind, `guards.clearly_passes`) answers
exactly as the table of guards does: it passes a command only when every guard passes
it, whatever odd values the house holds, and otherwise leaves the verdict (and its
reason) to the table. Checked against the table itself (`check` given a copy of
`GUARDS` never takes the passing path)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.commands import guards
from roost.commands.guards import GUARDS, Limits, check
from roost.core.commands import Action, Command, SetCool, SetHeat
from roost.core.model import AlarmState, SmokeCoAlarm, Structure, Thermostat, ThermostatMode

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
TABLE = tuple(GUARDS)  # the same guards, not the same tuple: the table alone decides
ODD: list[Any] = [None, math.nan, math.inf, -math.inf, 1e309, 1e6, -1e6, 21, "21", True]


def command(action: Action) -> Command:
    return Command("c1", "a", "t", action, NOW, NOW + timedelta(minutes=5), rule="r")


def thermostat(**values: Any) -> Thermostat:
    base: dict[str, Any] = {"id": "t", "name": "Den", "structure_id": "s", "can_cool": True}
    base.update(values)
    return Thermostat(**base)


def alarm(co: AlarmState | None = AlarmState.OK, smoke: AlarmState | None = AlarmState.OK) -> Any:
    return SmokeCoAlarm(id="p", name="Hall", structure_id="s", co=co, smoke=smoke)  # type: ignore[arg-type]


celsius = st.sampled_from([6.5, 7.0, 9.0, 17.5, 18.0, 21.0, 30.0, 32.0, 32.5, 35.0, 36.0])
value = celsius | st.sampled_from(ODD)
flag = st.sampled_from([True, False, None, 1, 0])
pair = st.sampled_from(
    [(9.0, 32.0), (18.0, 22.0), (9, 32), [9.0, 32.0], (math.nan, 32.0), (9.0, math.inf),
     (-math.inf, 32.0), (32.0, 9.0), None, (9.0,), "9-32"]
)  # fmt: skip
levels = st.sampled_from([AlarmState.OK, AlarmState.OK, AlarmState.WARNING, None])


@given(
    kind=st.sampled_from([SetHeat, SetCool]),
    argument=value,
    mode=st.sampled_from([*ThermostatMode, None]),
    online=flag,
    locked=flag,
    emergency=flag,
    allowed=pair,
    locked_range=pair,
    current=value,
    co=levels,
    smoke=levels,
    recent=st.integers(min_value=0, max_value=25),
    structure=st.booleans(),
)
def test_the_passing_path_answers_as_the_table(
    kind: type[SetHeat] | type[SetCool],
    argument: Any,
    mode: ThermostatMode | None,
    online: Any,
    locked: Any,
    emergency: Any,
    allowed: Any,
    locked_range: Any,
    current: Any,
    co: AlarmState | None,
    smoke: AlarmState | None,
    recent: int,
    structure: bool,
) -> None:
    t = thermostat(
        mode=mode,
        online=online,
        locked=locked,
        emergency_heat=emergency,
        allowed_range_c=allowed,
        locked_range_c=locked_range,
        heat_setpoint_c=current,
        cool_setpoint_c=current,
    )
    target = Structure(id="t", name="Home") if structure else t
    action = kind(argument)
    around = [alarm(co, smoke)]
    assert check(command(action), target, around, Limits(), recent) == check(
        command(action), target, around, Limits(), recent, TABLE
    )


REFUSED = [
    ("arguments", SetHeat(math.nan), {}, []),
    ("target", SetHeat(21.0), {"structure": True}, []),
    ("online", SetHeat(21.0), {"online": False}, []),
    ("online", SetHeat(21.0), {"online": None}, []),
    ("device_range", SetHeat(21.0), {"allowed_range_c": (9.0, 20.0)}, []),
    ("device_range", SetHeat(21.0), {"allowed_range_c": (math.nan, 32.0)}, []),
    ("safe_band", SetHeat(31.0), {"allowed_range_c": (0.0, 40.0)}, []),
    ("safe_band", SetCool(17.0), {"allowed_range_c": (0.0, 40.0)}, []),
    ("emergency_heat", SetCool(24.0), {"emergency_heat": True}, []),
    ("emergency_heat", SetCool(24.0), {"emergency_heat": None}, []),
    ("lock", SetHeat(25.0), {"locked": True, "locked_range_c": (18.0, 22.0)}, []),
    ("lock", SetHeat(21.0), {"locked": None}, []),
    ("alarm", SetHeat(25.0), {"heat_setpoint_c": 20.0}, [("co", AlarmState.EMERGENCY)]),
    ("alarm", SetHeat(25.0), {"heat_setpoint_c": 20.0}, [("smoke", None)]),
    ("range_gap", SetHeat(23.0), {"mode": ThermostatMode.HEAT_COOL, "cool_setpoint_c": 24.0}, []),
    ("write_budget", SetHeat(21.0), {"recent": 20}, []),
]


@pytest.mark.parametrize(("guard", "action", "house", "alarms"), REFUSED)
def test_each_guard_still_refuses_through_check(
    guard: str, action: Action, house: dict[str, Any], alarms: list[tuple[str, Any]]
) -> None:
    """Every guard a setpoint meets refuses it through `check` (where the passing path
    runs first), with the table's own verdict, and the passing path does not pass it."""
    values = dict(house)
    recent = values.pop("recent", 0)
    target = Structure(id="t", name="Home") if values.pop("structure", False) else None
    t = thermostat(**{"mode": ThermostatMode.HEAT, **values})
    around = [alarm(**dict(alarms))]
    refusal = check(command(action), target or t, around, Limits(), recent)
    assert refusal is not None
    assert refusal.guard == guard
    assert refusal == check(command(action), target or t, around, Limits(), recent, TABLE)
    assert not guards.clearly_passes(action, target or t, around, Limits(), recent)


def test_a_quiet_setpoint_takes_the_passing_path() -> None:
    """The common command is decided by the passing path (what the hot path relies on)."""
    t = thermostat(mode=ThermostatMode.HEAT)
    assert guards.clearly_passes(SetHeat(21.0), t, [alarm()], Limits(), 0)
    assert guards.clearly_passes(SetCool(24.0), t, [alarm()], Limits(), 0)
    assert check(command(SetHeat(21.0)), t, [alarm()], Limits()) is None
