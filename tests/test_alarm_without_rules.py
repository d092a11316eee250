"""An alarm that no loaded rule reacts to is still pushed, by roost itself: the alarm rules'
file broken when the daemon starts (a reload keeps a broken file's previous version, a
start has none), deleted, or never written; and when it clears, roost says so too.
Through a real `roost run`."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.faults.harness import fault_bed, wait_for

pytestmark = pytest.mark.anyio

ALARM = "alarm-hallway"
ROOST_OWN = "CO emergency at alarm 'alarm-hallway'"
ROOST_CLEARED = "CO cleared at alarm 'alarm-hallway'"

BROKEN = """
[[rule]]
name = "co alert"
on = { event = "co", to = ["warning", "emergency"]   # the closing brace lost in an edit
"""

MOTION_ONLY = """
[[rule]]
name = "doorbell"
on = { event = "motion" }
do = [{ action = "notify", title = "motion" }]
"""


async def test_a_co_alarm_with_the_alarm_rules_broken_at_start_is_pushed(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alarms.toml").write_text(BROKEN)
    (rules / "doorbell.toml").write_text(MOTION_ONLY)
    async with fault_bed(tmp_path, rules, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        assert '"event": "rule not loaded"' in bed.daemon.log()
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: any(ROOST_OWN in t for t in bed.titles()), timeout_s=10)
        await anyio.sleep(0.5)
        assert sum(ROOST_OWN in t for t in bed.titles()) == 1
        bed.home.set_co(ALARM, "ok")  # roost pushed the alarm: it pushes the clearing
        await wait_for(lambda: bed.titles()[ROOST_CLEARED] == 1, timeout_s=10)
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: bed.titles()[ROOST_OWN] == 2, timeout_s=10)
        bed.home.set_co(ALARM, "ok")
        await wait_for(lambda: bed.titles()[ROOST_CLEARED] == 2, timeout_s=10)
        await anyio.sleep(0.5)
        assert bed.titles()[ROOST_CLEARED] == 2, bed.titles()


async def test_an_alarm_a_rule_pushes_gets_no_second_push_from_roost(tmp_path: Path) -> None:
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:  # the README's rules
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: bed.titles()["CO emergency in the Hallway"] == 1)
        await anyio.sleep(1.0)
        assert not any(ROOST_OWN in t for t in bed.titles()), bed.titles()
        bed.home.set_co(ALARM, "ok")  # the README's co_cleared rule says so, not roost
        await wait_for(lambda: bed.titles()["CO cleared in the Hallway"] == 1)
        await anyio.sleep(1.0)
        assert not any(ROOST_CLEARED in t for t in bed.titles()), bed.titles()
