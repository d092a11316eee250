"""An alarm whose only rule fails before it sends its push (it raises, or is stopped) is
still pushed, by roost itself, through a real `roost run`; and its clearing too, when no
rule reacts to that."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.faults.harness import fault_bed, wait_for

pytestmark = pytest.mark.anyio

ALARM = "alarm-hallway"
ROOST_OWN = "CO emergency at alarm 'alarm-hallway'"
ROOST_CLEARED = "CO cleared at alarm 'alarm-hallway'"

TYPO = """
from roost import rule, when

@rule(on=when("co", to=["warning", "emergency"]))
async def co_alert(event, home):
    alarm = home.device()
    await home.notify(f"CO {event.new} in the {alarm.rooom}", priority="urgent")  # a typo
"""


async def test_an_alarm_whose_rule_raises_before_its_push_is_pushed(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alarms.py").write_text(TYPO)
    async with fault_bed(tmp_path, rules, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: any(ROOST_OWN in t for t in bed.titles()), timeout_s=10)
        await anyio.sleep(0.5)
        assert sum(ROOST_OWN in t for t in bed.titles()) == 1
        assert '"event": "rule raised"' in bed.daemon.log()
        bed.home.set_co(ALARM, "ok")
        await wait_for(lambda: bed.titles()[ROOST_CLEARED] == 1, timeout_s=10)
