"""A token that sees a WWN structure but not its Protect devices still gets a CO emergency
the structure reports (its own `co_alarm_state`): through a real `roost run` against the WWN
simulator the alarm is pushed, and a rule raising the heat meanwhile is refused by the alarm
guard (the write never reaches the cloud). So does a token that sees only some of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from roost.simulator.home import SimSmokeCoAlarm
from tests.alarm_bed import ALARM, HOME, WARM_UP, vendor_bed
from tests.faults.harness import RULES, wait_for

pytestmark = pytest.mark.anyio

BEDROOM = "alarm-bedroom"


async def test_a_structure_level_co_emergency_is_pushed_and_heat_refused(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RULES / "alarms.toml", rules)
    (rules / "warm.toml").write_text(WARM_UP)
    async with vendor_bed(tmp_path, "nest_wwn", rules) as bed:
        bed.cloud.hide_protects()
        assert "smoke_co_alarms" not in bed.cloud.document()["devices"]
        await bed.start()
        before = {t.id: t.target_c for t in bed.home.thermostats.values()}
        bed.home.set_co(ALARM, "emergency")
        await bed.push("CO emergency", 0)
        assert not any("None" in title for title in bed.titles())  # it names a place
        await wait_for(lambda: '"event": "command refused"' in bed.daemon.log())
        await anyio.sleep(1.0)  # a write, if any got out, lands now
        assert {t.id: t.target_c for t in bed.home.thermostats.values()} == before
        assert bed.cloud.writes == []
        assert '"guard": "alarm"' in bed.daemon.log()
        assert f"{HOME}:alarms" in bed.daemon.log()


async def test_a_structure_alarm_beside_a_visible_protect_counts_when_it_says_more(
    tmp_path: Path,
) -> None:
    """Two Protects, the token sees one: an emergency only the structure shows (the hidden
    one's) is pushed; the visible one catching up gets its own push and no "cleared" from
    the structure's; the structure clearing is pushed as cleared; an alarm the visible one
    already shows is pushed once."""
    async with vendor_bed(tmp_path, "nest_wwn") as bed:  # the README's rules
        bed.home.add(SimSmokeCoAlarm(BEDROOM, "Bedroom", HOME, "Bedroom"))
        bed.cloud.hide_protect(BEDROOM)
        await bed.start()
        bed.home.set_co(BEDROOM, "emergency")
        await bed.push("CO emergency in the Home", 0)
        bed.home.set_co(ALARM, "emergency")
        await bed.push("CO emergency in the Hallway", 0)
        await anyio.sleep(1.0)  # a false "cleared", if any, lands now
        assert bed.count("CO cleared") == 0, bed.titles()
        assert bed.count("CO emergency") == 2, bed.titles()
        bed.home.set_co(BEDROOM, "ok")
        bed.home.set_co(ALARM, "ok")
        await bed.push("CO cleared in the Home", 0)
        await bed.push("CO cleared in the Hallway", 0)
        bed.home.set_co(ALARM, "warning")  # the structure says no more than the Protect
        await bed.push("CO warning in the Hallway", 0)
        await anyio.sleep(1.0)
        assert bed.count("CO warning") == 1, bed.titles()
        assert bed.count("CO emergency") == 2, bed.titles()
