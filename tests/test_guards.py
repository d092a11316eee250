"""Guards on the real path: rule → guard → dispatcher → simulator over HTTP.

A refused command never reaches the simulator, and its refusal names the guard and says
why: in the outcome the rule gets back, in the rule's trace, on the bus, and in the log.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import structlog

from roost.config.settings import GuardSettings, Settings
from roost.core.commands import SetFanTimer, SetHeat
from roost.core.events import CoAlarm, CommandOutcome, Outcome
from roost.simulator.home import SimHome
from tests.command_stack import ALARM, LIVING, CommandStack, command_stack

pytestmark = pytest.mark.anyio

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
    home.set_co(ALARM, "warning")


def prepare_smoke_in_eco(home: SimHome) -> None:
    home.set_smoke(ALARM, "emergency")
    home.set_mode(LIVING, "eco")


def prepare_lock(home: SimHome) -> None:
    thermostat = home.thermostat(LIVING)
    thermostat.locked, thermostat.locked_min_c, thermostat.locked_max_c = True, 19.0, 22.0
    home.changed()


def prepare_heat_cool(home: SimHome) -> None:
    home.set_mode(LIVING, "heat-cool")
    home.set_range(LIVING, 19.0, 24.0)


def nothing(home: SimHome) -> None:
    return None


CASES: list[tuple[str, Callable[[SimHome], None], str, str]] = [
    ("set_heat(40)", nothing, "device_range", "40 °C is outside the device's range 9–32 °C"),
    ("set_heat(31)", nothing, "safe_band", "heat 31 °C is outside the safe band 7–30 °C"),
    ("set_cool(17)", nothing, "safe_band", "cool 17 °C is outside the safe band 18–35 °C"),
    ("set_mode('cool')", prepare_emergency_heat, "emergency_heat", "emergency heat is on"),
    ("set_range(20, 25)", prepare_emergency_heat, "emergency_heat", "emergency heat is on"),
    ("set_heat(21)", prepare_offline, "online", "'Living Room' is offline"),
    ("set_fan_timer(15)", prepare_co, "alarm", "'Hallway' reports smoke ok, CO warning"),
    ("set_mode('heat')", prepare_co, "alarm", "no fan or HVAC start during a smoke or CO alarm"),
    ("set_heat(22)", prepare_co, "alarm", "CO warning"),  # a higher setpoint may start heat
    ("set_eco(False)", prepare_smoke_in_eco, "alarm", "smoke emergency"),
    ("set_heat(25)", prepare_lock, "lock", "25 °C is outside the locked range 19–22 °C"),
    ("set_range(20, 20.5)", nothing, "range_gap", "leave a 0.5 °C gap, below the minimum 1.5"),
    ("set_heat(23.5)", prepare_heat_cool, "range_gap", "heat 23.5 °C and cool 24 °C"),
]


async def run_rule(
    tmp_path: Path,
    call: str,
    prepare: Callable[[SimHome], None] = nothing,
    configure: Callable[[Settings], None] | None = None,
) -> tuple[CommandStack, list[CommandOutcome], list[dict[str, object]]]:
    """Run the rule once (everyone leaves); its outcomes, and the log lines meanwhile."""
    home = SimHome.demo()
    prepare(home)
    rules = {"dangerous.py": RULE.format(call=call)}
    async with command_stack(tmp_path, rules=rules, home=home, configure=configure) as stack:
        with structlog.testing.capture_logs() as logs:
            await stack.away()
            await stack.until(lambda: bool(stack.outcomes()))
            trace_done = lambda: stack.runtime.engine.traces.latest("dangerous")  # noqa: E731
            await stack.until(lambda: bool(trace_done()) and bool(trace_done()[-1].steps))
        return stack, stack.outcomes(), logs


def assert_refused(
    stack: CommandStack,
    outcomes: list[CommandOutcome],
    logs: list[dict[str, object]],
    guard: str,
    reason: str,
) -> None:
    assert [(o.outcome, o.guard) for o in outcomes] == [(Outcome.REFUSED, guard)]
    refused = outcomes[0]
    assert reason in refused.reason
    assert refused.rule == "dangerous"
    assert refused.cause is not None
    assert refused.context.causation == refused.command
    refusals = [entry for entry in logs if entry["event"] == "command refused"]
    assert len(refusals) == 1
    assert refusals[0]["guard"] == guard
    assert reason in str(refusals[0]["reason"])
    assert refusals[0]["command_id"] == refused.command
    trace = stack.runtime.engine.traces.latest("dangerous")[-1]
    assert [(s.outcome, guard in s.detail, reason in s.detail) for s in trace.steps] == [
        ("refused", True, True)
    ]
    assert stack.cloud.requests == []


@pytest.mark.parametrize(("call", "prepare", "guard", "reason"), CASES)
async def test_a_dangerous_command_is_refused_and_never_sent(
    tmp_path: Path,
    call: str,
    prepare: Callable[[SimHome], None],
    guard: str,
    reason: str,
) -> None:
    stack, outcomes, logs = await run_rule(tmp_path, call, prepare)
    assert_refused(stack, outcomes, logs, guard, reason)


async def test_a_tightened_band_refuses_what_the_default_allows(tmp_path: Path) -> None:
    def tighten(settings: Settings) -> None:
        settings.guards = GuardSettings(heat_max_c=24)

    stack, outcomes, logs = await run_rule(tmp_path, "set_heat(25)", configure=tighten)
    assert_refused(stack, outcomes, logs, "safe_band", "outside the safe band 7–24 °C")


async def test_a_loosened_guard_needs_the_explicit_setting_and_is_logged(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allow_loosening"):
        GuardSettings(heat_max_c=32)

    def loosen(settings: Settings) -> None:
        settings.guards = GuardSettings(allow_loosening=True, heat_max_c=32)

    with structlog.testing.capture_logs() as logs:
        async with command_stack(tmp_path, configure=loosen):
            pass
    loosened = [e for e in logs if e["event"] == "guard loosened by configuration"]
    assert [e["setting"] for e in loosened] == ["heat_max_c = 32 (default 30)"]


async def test_lowering_the_heat_during_an_alarm_is_allowed(tmp_path: Path) -> None:
    home = SimHome.demo()
    prepare_co(home)
    rules = {"lower.py": RULE.format(call="set_heat(18)")}
    async with command_stack(tmp_path, rules=rules, home=home) as stack:
        await stack.away()
        await stack.until(lambda: Outcome.CONFIRMED in [o.outcome for o in stack.outcomes()])
        path = "/devices/thermostats/" + LIVING
        assert stack.cloud.writes == [(path, {"target_temperature_c": 18})]


async def test_the_write_budget_refuses_once_spent(tmp_path: Path) -> None:
    def budget_of_two(settings: Settings) -> None:
        settings.guards = GuardSettings(writes_per_device_per_hour=2)

    rule = """
    from roost import rule, when

    @rule(on=when("presence", to="away"))
    async def busy(event, home):
        thermostat = home.thermostats(name="Living Room")[0]
        await thermostat.set_heat(21)
        await thermostat.set_fan_timer(15)
        await thermostat.set_mode("cool")
    """
    async with command_stack(tmp_path, rules={"busy.py": rule}, configure=budget_of_two) as stack:
        with structlog.testing.capture_logs() as logs:
            await stack.away()
            await stack.until(lambda: any(o.outcome is Outcome.REFUSED for o in stack.outcomes()))
        refused = [o for o in stack.outcomes() if o.outcome is Outcome.REFUSED]
        assert [(o.action, o.guard) for o in refused] == [("set mode cool", "write_budget")]
        assert "2 writes in the last hour (budget 2)" in refused[0].reason
        assert [e["stage"] for e in logs if e["event"] == "command refused"] == ["send"]
        assert len(stack.cloud.requests) == 2
        assert all(b.get("hvac_mode") != "cool" for _, b in stack.cloud.writes)


async def test_a_guard_is_checked_again_just_before_sending(tmp_path: Path) -> None:
    """A command that waits (here behind a slow first write) meets the house as it is then."""
    async with command_stack(tmp_path) as stack:
        stack.cloud.fail_next(
            "write", 1, 429, headers={"Retry-After": "0.5"}
        )  # the first write must wait
        first = await stack.submit(LIVING, SetHeat(21.0))
        second = await stack.submit(LIVING, SetFanTimer(15))
        assert (first.outcome, second.outcome) == (Outcome.QUEUED, Outcome.QUEUED)
        stack.home.set_co(ALARM, "emergency")  # while the fan command waits its turn
        await stack.until(lambda: any(isinstance(e, CoAlarm) for e in stack.events))
        refused = await stack.settled(second.command)
        assert (refused.outcome, refused.guard) == (Outcome.REFUSED, "alarm")
        assert all("fan_timer_active" not in b for _, b in stack.cloud.writes)
