"""Property: whatever a rule asks in whatever house, no unsafe write reaches the cloud.

Hypothesis builds a home (modes, setpoints, locks, emergency heat, offline devices, smoke
and CO states), lets the cloud report odd current setpoints beside it (unknown, NaN, ±inf,
1e309, absurd: the guards must fail closed), and a rule that fires a random list of
actions of every kind, with odd arguments too. The whole daemon runs
against the simulator over HTTP. Then every write the simulator received is judged by an
oracle written here from the invariants themselves, in the vendor's own field names, and
independent of `roost.commands.guards`: the house as the simulator held it when the write arrived
(replayed from the writes it applied) must not be put in danger by it. Every command
also ends with a final outcome: nothing is lost.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from roost.config.settings import DispatchSettings, GuardSettings, Settings
from roost.core.events import Outcome
from roost.simulator.home import SimHome, SimThermostat
from roost.simulator.nest_wwn import WriteRequest
from tests.command_stack import ALARM, BEDROOM, HOME, LIVING, CommandStack, command_stack

pytestmark = pytest.mark.anyio

BUDGET = 2
DEVICE_RANGE = (9.0, 32.0)
HEAT_BAND, COOL_BAND, GAP = (7.0, 30.0), (18.0, 35.0), 1.5
FINAL = {Outcome.CONFIRMED, Outcome.REFUSED, Outcome.FAILED, Outcome.DROPPED, Outcome.SUPERSEDED}

# ---- the house -------------------------------------------------------------------------

gaps = [-1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 4.0]
edges = [6.5, 7.0, 8.5, 9.0, 17.5, 18.0, 20.0, 22.0, 29.5, 30.0, 30.5, 32.0, 32.5, 35.0, 36.0]
celsius = st.sampled_from(edges) | st.integers(min_value=0, max_value=90).map(lambda h: h / 2)
setpoint = st.integers(min_value=30, max_value=56).map(lambda half: half / 2)  # 15–28 °C
alarm_state = st.sampled_from(["ok"] * 6 + ["warning", "emergency"])
# What the cloud may report as a current setpoint instead of the home's real one.
odd_reported = st.sampled_from(["null", "1e309", "-1e309", "NaN", "Infinity", "1000", "-300"])
SETPOINT_FIELDS = ("target_temperature_c", "target_temperature_low_c", "target_temperature_high_c")
odd_argument = st.sampled_from(["float('nan')", "float('inf')", "-1e309", "1e309", "1e6", "-1e6"])


@st.composite
def thermostat_states(draw: st.DrawFn, can_cool: bool) -> dict[str, Any]:
    modes = ["heat", "eco", "off"] + (["cool", "heat-cool", "heat-cool"] if can_cool else [])
    low = draw(setpoint)
    locked_min = draw(setpoint)
    return {
        "online": draw(st.sampled_from([True] * 5 + [False])),
        "mode": draw(st.sampled_from(modes)),
        "previous_mode": draw(st.sampled_from(["heat", *(["cool"] if can_cool else [])])),
        "target_c": draw(setpoint),
        "target_low_c": low,
        "target_high_c": low + draw(st.sampled_from([1.5, 2.0, 4.0])),
        "emergency_heat": draw(st.sampled_from([False, False, True])),
        "locked": draw(st.sampled_from([False] * 4 + [True])),
        "locked_min_c": locked_min,
        "locked_max_c": locked_min + draw(st.sampled_from([1.0, 3.0])),
    }


@st.composite
def houses(draw: st.DrawFn) -> dict[str, Any]:
    odd = st.none() | odd_reported
    return {
        LIVING: draw(thermostat_states(can_cool=True)),
        BEDROOM: draw(thermostat_states(can_cool=False)),
        "smoke": draw(alarm_state),
        "co": draw(alarm_state),
        "away": draw(st.booleans()),
        "reported": {  # device → field → the JSON text the cloud sends instead
            device: {f: v for f in SETPOINT_FIELDS if (v := draw(odd)) is not None}
            for device in (LIVING, BEDROOM)
        },
    }


def build_home(house: dict[str, Any]) -> SimHome:
    home = SimHome.demo()
    for device in (LIVING, BEDROOM):
        thermostat = home.thermostat(device)
        for name, value in house[device].items():
            setattr(thermostat, name, value)
    home.set_smoke(ALARM, house["smoke"])
    home.set_co(ALARM, house["co"])
    home.set_away(HOME, house["away"])
    home.tick(0)
    return home


# ---- the rule --------------------------------------------------------------------------

thermostat_call = st.one_of(
    st.builds(lambda c: f"set_heat({c})", celsius),
    st.builds(lambda c: f"set_cool({c})", celsius),
    st.builds(lambda c: f"set_heat({c})", odd_argument),
    st.builds(lambda c: f"set_cool({c})", odd_argument),
    st.builds(lambda c, h: f"set_range({c}, {h})", odd_argument, celsius),
    st.builds(lambda h, gap: f"set_range({h}, {h + gap})", celsius, st.sampled_from(gaps)),
    st.builds(
        lambda m: f"set_mode({m!r})", st.sampled_from(["heat", "cool", "heat-cool", "eco", "off"])
    ),
    st.builds(lambda on: f"set_eco({on})", st.booleans()),
    st.builds(lambda m: f"set_fan_timer({m})", st.sampled_from([0, 15, 30])),
)
action = st.one_of(
    st.builds(
        lambda d, call: f"await home.device({d!r}).{call}",
        st.sampled_from([LIVING, LIVING, LIVING, BEDROOM]),  # the one that can cool, mostly
        thermostat_call,
    ),
    st.builds(lambda p: f"await home.set_presence({p!r})", st.sampled_from(["home", "away"])),
)

RULE = """
from roost import rule, when

@rule(on=when("temperature", device="{trigger}"))
async def random_actions(event, home):
{body}
"""


def rule_file(actions: list[str]) -> str:
    body = "\n".join(f"    {line}" for line in actions)
    return RULE.format(trigger=BEDROOM, body=body)


# ---- the oracle ------------------------------------------------------------------------


@dataclass
class Replay:
    """The simulator's house as each write found it, replayed from the applied writes."""

    thermostats: dict[str, SimThermostat]
    alarm: bool

    @classmethod
    def of(cls, home: SimHome) -> Replay:
        copies = {i: dataclasses.replace(t) for i, t in home.thermostats.items()}
        a = home.alarm(ALARM)
        return cls(copies, a.smoke != "ok" or a.co != "ok")

    def apply(self, device: str, body: dict[str, Any]) -> None:
        t = self.thermostats[device]
        mode = body.get("hvac_mode")
        if mode is not None:
            if mode == "eco" and t.mode != "eco":
                t.previous_mode = t.mode
            t.mode = mode
        t.target_c = body.get("target_temperature_c", t.target_c)
        t.target_low_c = body.get("target_temperature_low_c", t.target_low_c)
        t.target_high_c = body.get("target_temperature_high_c", t.target_high_c)


def setpoint_mode(t: SimThermostat) -> str:
    """The mode whose fields a setpoint write addresses (eco writes for the mode it returns to)."""
    if t.mode != "eco":
        return t.mode
    return t.previous_mode if t.previous_mode not in (None, "eco") else "heat"


def temperatures(t: SimThermostat, body: dict[str, Any]) -> tuple[list[float], list[float]]:
    """The heat and the cool setpoints a thermostat write sets."""
    mode = setpoint_mode(t)
    heat = [body[k] for k in ("target_temperature_low_c",) if k in body]
    cool = [body[k] for k in ("target_temperature_high_c",) if k in body]
    if "target_temperature_c" in body:
        (heat if mode == "heat" else cool).append(body["target_temperature_c"])
    return heat, cool


def active(t: SimThermostat) -> tuple[float | None, float | None]:
    """The heat and cool setpoints the thermostat holds now."""
    return {
        "heat": (t.target_c, None),
        "cool": (None, t.target_c),
        "heat-cool": (t.target_low_c, t.target_high_c),
        "eco": (t.eco_low_c, t.eco_high_c),
    }.get(t.mode, (None, None))


def violations(t: SimThermostat, body: dict[str, Any], alarm: bool) -> list[str]:
    found = []
    heat, cool = temperatures(t, body)
    for value in heat + cool:
        if not DEVICE_RANGE[0] <= value <= DEVICE_RANGE[1]:
            found.append(f"{value} outside the device range")
        if t.locked and not t.locked_min_c <= value <= t.locked_max_c:
            found.append(f"{value} outside the locked range")
    found += [f"heat {v} outside the band" for v in heat if not HEAT_BAND[0] <= v <= HEAT_BAND[1]]
    found += [f"cool {v} outside the band" for v in cool if not COOL_BAND[0] <= v <= COOL_BAND[1]]
    mode = body.get("hvac_mode")
    if t.emergency_heat and (cool or (mode in ("cool", "heat-cool") and mode != t.mode)):
        found.append("cooling with emergency heat on")
    if setpoint_mode(t) == "heat-cool" and (heat or cool):
        low = heat[0] if heat else t.target_low_c
        high = cool[0] if cool else t.target_high_c
        if high - low < GAP:
            found.append(f"range {low}–{high} too narrow")
    if alarm:
        found += alarm_violations(t, body, heat, cool)
    return found


def alarm_violations(
    t: SimThermostat, body: dict[str, Any], heat: list[float], cool: list[float]
) -> list[str]:
    found = []
    if body.get("fan_timer_active") is True:
        found.append("fan started during an alarm")
    mode = body.get("hvac_mode")
    if mode is not None and mode not in ("off", t.mode) and not (mode == "eco" and t.mode != "off"):
        found.append(f"mode {t.mode} → {mode} during an alarm")
    held_heat, held_cool = active(t)
    if any(held_heat is None or v > held_heat for v in heat):
        found.append("heat raised during an alarm")
    if any(held_cool is None or v < held_cool for v in cool):
        found.append("cool lowered during an alarm")
    return found


def judge(replay: Replay, requests: list[WriteRequest]) -> list[str]:
    writes: dict[str, int] = {}
    found = []
    for request in requests:
        path = request.path.removeprefix("/stream-host")
        writes[path] = writes.get(path, 0) + 1
        if writes[path] > BUDGET:
            found.append(f"{path}: write {writes[path]} over the budget")
        body = json.loads(request.body)
        target = path.rsplit("/", 1)[-1]
        if target == HOME:
            if replay.alarm and body.get("away") == "home":
                found.append("home presence during an alarm")
            continue
        t = replay.thermostats[target]
        if not t.online:
            found.append(f"{path}: write to an offline device")
        found += [f"{path} {body}: {v}" for v in violations(t, body, replay.alarm)]
        if request.applied:
            replay.apply(target, body)
    return found


# ---- the property ----------------------------------------------------------------------


def tight(settings: Settings) -> None:
    settings.guards = GuardSettings(writes_per_device_per_hour=BUDGET)
    settings.dispatch = DispatchSettings(echo_timeout_s=1.0)


async def every_command_settles(stack: CommandStack, count: int) -> None:
    def done() -> bool:
        commands = {o.command for o in stack.outcomes()}
        return len(commands) == count and all(
            any(k in FINAL for k in stack.kinds(c)) for c in commands
        )

    await stack.until(done, timeout_s=15)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(house=houses(), actions=st.lists(action, min_size=1, max_size=8))
async def test_no_unsafe_write_ever_reaches_the_simulator(
    house: dict[str, Any], actions: list[str]
) -> None:
    home = build_home(house)
    replay = Replay.of(home)  # the house before the rule ran
    with tempfile.TemporaryDirectory() as tmp:
        rules = {"random.py": rule_file(actions)}
        async with command_stack(Path(tmp), rules=rules, home=home, configure=tight) as stack:
            for device, fields in house["reported"].items():
                for name, raw in fields.items():
                    stack.cloud.serve_raw(f"devices/thermostats/{device}/{name}", raw)
                event(f"cloud reports {len(fields)} odd setpoint(s) for {device}")
            stack.home.set_ambient(BEDROOM, 30.0)  # fires the rule
            await every_command_settles(stack, len(actions))
            requests = stack.answered()
            for outcome in stack.outcomes():
                event(f"{outcome.outcome} {outcome.guard or outcome.failure or ''}".strip())
    event(f"{len(requests)} writes reached the simulator")
    assert judge(replay, requests) == []
