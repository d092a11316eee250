"""Guards on the real path: rule → guard → dispatcher → simulator over HTTP.

A refused command never reaches the simulator, and its refusal names the guard and says
why, in the outcome event and in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import structlog

from roost.events import CommandOutcome, Outcome
from roost.simulator.home import SimHome
from roost.simulator.stack import Stack, running_stack

pytestmark = pytest.mark.anyio

HOME = "structure-home"
LIVING = "thermostat-living-room"

RULE = """
from roost import rule, when

@rule(on=when("presence", to="away"))
async def dangerous(event, home):
    thermostat = home.thermostats(name="Living Room")[0]
    await thermostat.{call}
"""


def prepare_emergency_heat(home: SimHome) -> None:
    home.thermostat(LIVING).emergency_heat = True
    home.changed()


def prepare_offline(home: SimHome) -> None:
    home.set_online(LIVING, False)


def prepare_co(home: SimHome) -> None:
    home.set_co("alarm-hallway", "warning")


def prepare_lock(home: SimHome) -> None:
    thermostat = home.thermostat(LIVING)
    thermostat.locked, thermostat.locked_min_c, thermostat.locked_max_c = True, 19.0, 22.0
    home.changed()


def nothing(home: SimHome) -> None:
    return None


CASES: list[tuple[str, Callable[[SimHome], None], str, str]] = [
    ("set_heat(40)", nothing, "device_range", "40 °C is outside the device's range 9–32 °C"),
    ("set_heat(31)", nothing, "safe_band", "heat 31 °C is outside the safe band 7–30 °C"),
    ("set_mode('cool')", prepare_emergency_heat, "emergency_heat", "emergency heat is on"),
    ("set_heat(21)", prepare_offline, "online", "'Living Room' is offline"),
    ("set_fan_timer(15)", prepare_co, "alarm", "'Hallway' reports smoke ok, CO warning"),
    ("set_mode('heat')", prepare_co, "alarm", "no fan or HVAC start during a smoke or CO alarm"),
    ("set_heat(25)", prepare_lock, "lock", "25 °C is outside the locked range 19–22 °C"),
    ("set_range(20, 20.5)", nothing, "range_gap", "gap is below the minimum 1.5 °C"),
]


async def outcomes_after_away(stack: Stack) -> list[CommandOutcome]:
    inbox = stack.runtime.bus.subscribe("test")
    stack.home.set_away(HOME, True)
    with anyio.fail_after(10):
        async for batch in inbox:
            found = [e for e in batch if isinstance(e, CommandOutcome)]
            if found:
                return found
    raise AssertionError("no command outcome")


@pytest.mark.parametrize(("call", "prepare", "guard", "reason"), CASES)
async def test_a_dangerous_command_is_refused_and_never_sent(
    tmp_path: Path,
    call: str,
    prepare: Callable[[SimHome], None],
    guard: str,
    reason: str,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "dangerous.py").write_text(RULE.format(call=call))
    home = SimHome.demo()
    prepare(home)
    async with running_stack(rules, state_dir=tmp_path, home=home) as stack:
        await stack.connected()
        with structlog.testing.capture_logs() as logs:
            outcomes = await outcomes_after_away(stack)
        await anyio.sleep(0.2)  # a write that slipped through would have landed by now
        assert [(o.outcome, o.guard) for o in outcomes] == [(Outcome.REFUSED, guard)]
        assert reason in outcomes[0].reason
        assert outcomes[0].rule == "dangerous"
        refusals = [entry for entry in logs if entry["event"] == "command refused"]
        assert len(refusals) == 1
        assert refusals[0]["guard"] == guard
        assert reason in refusals[0]["reason"]
        assert stack.cloud.requests == []


async def test_a_safe_command_passes_and_lands(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "safe.py").write_text(RULE.format(call="set_heat(21.5)"))
    async with running_stack(rules, state_dir=tmp_path) as stack:
        await stack.connected()
        outcomes = await outcomes_after_away(stack)
        assert outcomes[0].outcome is Outcome.SENT
        with anyio.fail_after(5):
            while stack.home.thermostat(LIVING).target_c != 21.5:
                await anyio.sleep(0.01)
        assert [body for _, body in stack.cloud.writes] == [{"target_temperature_c": 21.5}]
