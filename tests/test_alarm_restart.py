"""An alarm raised again while the daemon was down, right after it cleared, is pushed again
after the restart, through a real `roost run` killed with SIGKILL."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import pytest

from tests.faults.harness import fault_bed, wait_for

pytestmark = pytest.mark.anyio

ALARM = "alarm-hallway"
CO_TITLE = "CO emergency in the Hallway"
CLEARED = "CO cleared in the Hallway"


async def test_a_co_alarm_raised_again_while_down_after_a_clear_is_pushed(tmp_path: Path) -> None:
    """The clear's push is committed (its change identity with it) and the daemon dies
    before its once-a-second save of the home: the store's home still says emergency.
    The cloud then says emergency again: that is a new alarm, not the old one."""
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: bed.titles()[CO_TITLE] == 1)
        await bed.daemon.stop()  # an orderly stop: the home is saved in emergency
        await bed.daemon.start(kill_at="outbox_committed")
        await bed.daemon.wait_connected(2)
        bed.home.set_co(ALARM, "ok")  # its push is committed, then the daemon dies
        assert await bed.daemon.wait_exit() == -signal.SIGKILL
        bed.home.set_co(ALARM, "emergency")  # nobody is watching
        await bed.daemon.start()
        await bed.daemon.wait_connected(3)
        await wait_for(lambda: bed.titles()[CLEARED] == 1)  # the committed push goes out
        await wait_for(lambda: bed.titles()[CO_TITLE] == 2, timeout_s=8)
        await anyio.sleep(0.5)
        assert bed.titles()[CO_TITLE] == 2
