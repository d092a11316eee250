"""One daemon per state directory: a second `roost run` on the same settings exits at once,
names the PID holding the lock, and leaves the first one's control socket alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from roost.service import control
from tests.faults.harness import TALLY, fault_bed

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_a_second_instance_exits_at_once_naming_the_first(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        assert bed.daemon.process is not None
        first_pid = bed.daemon.process.pid
        sock = bed.state_dir / "control.sock"
        before = sock.stat().st_ino
        second = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [sys.executable, "-m", "roost", "run", "--config", str(bed.daemon.config)],
                capture_output=True,
                text=True,
                timeout=30,
            )
        )
        TALLY.faults["second instance on the same state directory"] += 1
        assert second.returncode == 1
        assert f"PID {first_pid}" in second.stderr, second.stderr
        assert sock.stat().st_ino == before  # not removed and re-created by the second
        answer = await control.request(sock, {"command": "status"})
        assert answer["pid"] == first_pid
        assert bed.daemon.process.returncode is None


async def test_the_lock_is_freed_when_the_holder_is_killed(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        assert bed.daemon.process is not None
        bed.daemon.process.kill()
        await bed.daemon.wait_exit()
        await bed.daemon.start()  # a stale lock file does not block the restart
        await bed.daemon.wait_connected(2)
        assert bed.daemon.process is not None
        assert bed.daemon.process.returncode is None
