"""A rule that raises the heat on a CO emergency is refused for every vendor with smoke/CO
alarms, through a real `roost run`: the write never reaches the simulated cloud (commands
fail closed), while the alarm push still goes out."""

from __future__ import annotations

import shutil
from pathlib import Path

import anyio
import pytest

from tests.alarm_bed import ALARM, WARM_UP, vendor_bed
from tests.faults.harness import RULES, wait_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("vendor", ["nest_wwn", "nest_web", "netatmo"])
async def test_heat_raised_on_a_co_emergency_never_reaches_the_cloud(
    tmp_path: Path, vendor: str
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(RULES / "alarms.toml", rules)
    (rules / "warm.toml").write_text(WARM_UP)
    async with vendor_bed(tmp_path, vendor, rules) as bed:
        await bed.start()
        await anyio.sleep(1.0)  # netatmo: the first read of the timeline is a baseline
        before = {t.id: t.target_c for t in bed.home.thermostats.values()}
        bed.home.set_co(ALARM, "emergency")
        await bed.push("CO emergency", 0)
        await wait_for(lambda: '"event": "command refused"' in bed.daemon.log())
        await anyio.sleep(1.0)  # a write, if any got out, lands now
        assert {t.id: t.target_c for t in bed.home.thermostats.values()} == before
        assert '"guard": "alarm"' in bed.daemon.log()
