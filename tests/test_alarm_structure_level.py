"""A token that sees a WWN structure but not its Protect devices still gets a CO emergency
the structure reports (its own `co_alarm_state`): through a real `roost run` against the WWN
simulator the alarm is pushed, and a rule raising the heat meanwhile is refused by the alarm
guard (the write never reaches the cloud)."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from tests.alarm_bed import ALARM, HOME, WARM_UP, vendor_bed
from tests.faults.harness import RULES, wait_for

pytestmark = pytest.mark.anyio


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
