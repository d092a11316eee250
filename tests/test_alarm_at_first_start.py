"""An alarm already sounding when roost first sees the home (a first start, or a state
directory lost or unreadable) is pushed: the first picture is a baseline for everything
else, but not for an alarm above ok (fail open). Through a real `roost run`."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.faults.harness import fault_bed, wait_for

pytestmark = pytest.mark.anyio

ALARM = "alarm-hallway"
CO_TITLE = "CO emergency in the Hallway"


async def test_a_co_emergency_sounding_at_the_first_start_is_pushed_once(tmp_path: Path) -> None:
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:
        bed.home.set_co(ALARM, "emergency")  # before roost ever saw this home
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        await wait_for(lambda: bed.titles()[CO_TITLE] >= 1, timeout_s=10)
        await bed.daemon.stop()  # a restart: the same alarm is not news again
        await bed.daemon.start()
        await bed.daemon.wait_connected(2)
        await anyio.sleep(1.5)
        assert bed.titles()[CO_TITLE] == 1
        assert sum("motion" in t.lower() for t in bed.titles()) == 0  # only the alarm
