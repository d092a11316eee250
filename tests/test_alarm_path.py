"""Alarms always get through: no per-tag, per-rule, cooldown, rate or run-mode limit holds
back a smoke/CO push, while the same limits keep working for everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

RULES = Path(__file__).parent.parent / "rules"


async def test_a_flapping_co_sensor_cannot_use_up_the_default_limit() -> None:
    """warning/ok ×10, then emergency, with the README's rules and default settings."""
    async with simulate(RULES, HOME) as home:
        for _ in range(10):
            await home.set("Hallway", co="warning")
            await home.advance("20s")
            await home.set("Hallway", co="ok")
            await home.advance("20s")
        await home.set("Hallway", co="emergency")
        titles = home.titles()
        assert titles.count("CO warning in the Hallway") == 10
        assert titles.count("CO cleared in the Hallway") == 10
        assert titles[-1] == "CO emergency in the Hallway"
        suppressed = [s for t in home.traces() for s in t.steps if s.outcome == "suppressed"]
        assert suppressed == []


STORM_HOME = {**HOME, "alarms": {f"Alarm {n}": {} for n in range(12)}}

STORM_RULES = """
[[rule]]
name = "any alarm"
on = [{ event = "co" }, { event = "smoke" }]

[[rule.do]]
action = "notify"
tags = ["home"]
title = "{event.name} {event.new} at {device.name}"

[[rule]]
name = "motion"
on = { event = "motion" }
do = [{ action = "notify", title = "motion", tags = ["home"] }]
"""


async def test_an_alarm_storm_delivers_every_level_and_limits_the_rest(tmp_path: Path) -> None:
    rule_file(tmp_path, "storm.toml", STORM_RULES)
    async with simulate(tmp_path, STORM_HOME) as home:
        for n in range(12):
            await home.set(f"Alarm {n}", smoke="warning", co="warning")
        for n in range(12):
            await home.set(f"Alarm {n}", smoke="emergency")
        for _ in range(10):
            await home.motion("Front Door")  # same tag "home", not an alarm: limited
        titles = home.titles()
        for n in range(12):
            assert f"smoke warning at Alarm {n}" in titles
            assert f"co warning at Alarm {n}" in titles
            assert f"smoke emergency at Alarm {n}" in titles
        assert titles.count("motion") == 6  # the default 6 per 10 minutes; alarms don't count


COOLDOWN_RULE = """
from roost import rule, when

@rule(on=[when("co"), when("motion")], cooldown="1h", rate="1/1h", mode="single")
async def careful(event, home):
    await home.notify(f"{event.name} {getattr(event, 'new', '')}".strip())
    await home.delay("10m")
"""


async def test_a_rule_with_cooldown_rate_and_single_mode_still_pushes_each_alarm_level(
    tmp_path: Path,
) -> None:
    rule_file(tmp_path, "careful.py", COOLDOWN_RULE)
    async with simulate(tmp_path, HOME) as home:
        await home.set("Hallway", co="warning")
        await home.advance("1m")
        await home.set("Hallway", co="emergency")  # cooldown, rate and a running run
        await home.advance("1m")
        await home.set("Hallway", co="ok")
        await home.advance("1m")
        await home.set("Hallway", co="warning")  # a return from ok
        await home.motion("Front Door")  # not an alarm: the cooldown holds it back
        assert home.titles() == ["co warning", "co emergency", "co ok", "co warning"]
        reasons = [t.reason for t in home.traces("careful") if t.trigger.startswith("motion")]
        assert len(reasons) == 1
        assert "mode single" in reasons[0] or "cooldown" in reasons[0]


URGENT_RULES = """
[[rule]]
name = "urgent motion"
on = { event = "motion" }
do = [{ action = "notify", title = "urgent", tags = ["door"], priority = "urgent" }]

[[rule]]
name = "tagged urgent only"
on = { event = "motion" }
do = [{ action = "notify", title = "tagged", tags = ["urgent"] }]
"""


async def test_priority_urgent_is_never_limited_and_a_tag_alone_is(tmp_path: Path) -> None:
    rule_file(tmp_path, "urgent.toml", URGENT_RULES)
    async with simulate(tmp_path, HOME) as home:
        for _ in range(20):
            await home.motion("Front Door")
        assert home.titles().count("urgent") == 20
        assert home.titles().count("tagged") == 6
