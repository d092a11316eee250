"""Alarms under faults, through a real `roost run`: a flapping sensor with the default
limit, an odd value beside an alarm, a non-finite setpoint during an alarm, a rule that
blocks. Each alarm push is timed from the cloud's change to the sink; the closing line
counts the lost ones, the ones delayed over 1 s (against the same daemon's undisturbed
alarm push), and every unsafe write the simulator received (judged there)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tests.faults.harness import RULES, TALLY, Bed, Tally, fault_bed

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ALARM = "alarm-hallway"
HOME = "structure-home"
BEDROOM = "thermostat-bedroom"


async def timed_push(
    bed: Bed, change: Callable[[], None], title: str, timeout_s: float = 10.0
) -> float | None:
    """Make the change in the cloud; seconds until the next push titled `title` reached
    the sink, or None (lost)."""
    seen = len(bed.arrivals.get(title, []))
    started = time.monotonic()
    change()
    with anyio.move_on_after(timeout_s):
        while len(bed.arrivals.get(title, [])) <= seen:
            await anyio.sleep(0.01)
        return bed.arrivals[title][seen] - started
    return None


def record(fault: str, latency: float | None, baseline: float) -> None:
    TALLY.faults[fault] += 1
    if latency is None:
        TALLY.alarm_pushes_lost += 1
    elif latency - baseline > 1.0:
        TALLY.alarm_pushes_delayed += 1


async def baseline_push(bed: Bed) -> float:
    """An undisturbed CO warning push (it also loads apprise): the reference latency."""
    latency = await timed_push(
        bed, lambda: bed.home.set_co(ALARM, "warning"), "CO warning in the Hallway"
    )
    assert latency is not None
    return latency


def rules_with(tmp_path: Path, name: str, text: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RULES / "alarms.toml", rules)
    (rules / name).write_text(text)
    return rules


async def test_a_flapping_co_sensor_then_an_emergency_reaches_the_sink(tmp_path: Path) -> None:
    """warning/ok ×8 (16 urgent pushes, the default limit is 6 per 10 minutes), then emergency."""
    async with fault_bed(tmp_path) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        baseline = await baseline_push(bed)
        for cycle in range(8):
            latency = await timed_push(
                bed, lambda: bed.home.set_co(ALARM, "ok"), "CO cleared in the Hallway"
            )
            record("flapping CO sensor, default limit", latency, baseline)
            if cycle < 7:
                latency = await timed_push(
                    bed, lambda: bed.home.set_co(ALARM, "warning"), "CO warning in the Hallway"
                )
                record("flapping CO sensor, default limit", latency, baseline)
        latency = await timed_push(
            bed, lambda: bed.home.set_co(ALARM, "emergency"), "CO emergency in the Hallway"
        )
        record("flapping CO sensor, default limit", latency, baseline)
        assert latency is not None, "the emergency push was lost"
        assert bed.titles()["CO warning in the Hallway"] == 8
        assert bed.titles()["CO cleared in the Hallway"] == 8


async def test_an_odd_value_beside_a_co_emergency_reaches_the_sink(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        baseline = await baseline_push(bed)

        def odd_put() -> None:  # one put: the emergency, and a state roost never saw
            bed.cloud.serve_raw(f"devices/thermostats/{BEDROOM}/hvac_state", '"heating-stage2"')
            bed.home.set_co(ALARM, "emergency")

        latency = await timed_push(bed, odd_put, "CO emergency in the Hallway")
        record("odd value beside an alarm", latency, baseline)
        assert latency is not None, "the emergency push was lost"


HEAT_ON_CO = """
[[rule]]
name = "warm up"
on = { event = "co", to = "emergency" }
do = [{ action = "thermostat.set_heat", target = "all", celsius = 24 }]
"""


async def test_a_non_finite_setpoint_during_an_alarm_opens_no_guard(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, "heat.toml", HEAT_ON_CO)
    async with fault_bed(tmp_path, rules) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        baseline = await baseline_push(bed)

        def infinite_setpoint() -> None:
            bed.cloud.serve_raw(f"devices/thermostats/{BEDROOM}/target_temperature_c", "1e309")
            bed.home.set_co(ALARM, "emergency")

        latency = await timed_push(bed, infinite_setpoint, "CO emergency in the Hallway")
        record("non-finite setpoint during an alarm", latency, baseline)
        await anyio.sleep(1.5)  # a write, if any got out, arrives now
        assert latency is not None
        assert bed.judge.unsafe == []
        assert bed.daemon.log().count('"event": "command refused"') >= 1


BLOCKER = """
import time
from roost import rule, when

@rule(on=when("co", to="emergency"))
async def blocker(event, home):
    time.sleep(30)
"""


async def test_a_blocked_rule_does_not_delay_the_alarm_push(tmp_path: Path) -> None:
    rules = rules_with(tmp_path, "a_blocker.py", BLOCKER)
    async with fault_bed(tmp_path, rules) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        baseline = await baseline_push(bed)
        latency = await timed_push(
            bed, lambda: bed.home.set_co(ALARM, "emergency"), "CO emergency in the Hallway"
        )
        record("rule blocking the loop (time.sleep(30))", latency, baseline)
        assert latency is not None
        print(f"alarm push: undisturbed {baseline:.3f} s, beside a blocked rule {latency:.3f} s")
        assert latency - baseline < 1.0, (latency, baseline)
        await anyio.sleep(0.5)
        assert '"event": "rule stopped: it blocked the event loop' in bed.daemon.log()


LOOSE_GUARD = """
[guards]
allow_loosening = true
heat_max_c = 40
"""

HOT_RULE = """
[[rule]]
name = "too hot"
on = { event = "presence", to = "away" }
do = [{ action = "thermostat.set_heat", target = { name = "Living Room" }, celsius = 31 }]
"""


async def test_the_unsafe_tally_counts_when_a_guard_is_loosened(tmp_path: Path) -> None:
    """The tally can fail: with the safe band loosened through its option, the write the
    guard would have refused reaches the simulator and is counted there."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "hot.toml").write_text(HOT_RULE)
    own = Tally()  # not the suite's: this unsafe write is the point of the test
    async with fault_bed(tmp_path, rules, config=LOOSE_GUARD, tally=own) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_away(HOME, True)
        with anyio.fail_after(10):
            while not bed.judge.unsafe:
                await anyio.sleep(0.05)
    assert own.unsafe_commands == 1
    assert "heat 31.0 outside the safe band" in bed.judge.unsafe[0]
