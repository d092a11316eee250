"""Under systemd: READY, STATUS and WATCHDOG over a real notify socket, SIGTERM stops
cleanly, and the unit's hardening score."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import serve_sink
from tests.faults.harness import RULES, config_text

UNIT = Path(__file__).parent.parent / "systemd" / "roost.service"


@pytest.mark.anyio
async def test_ready_status_watchdog_and_a_clean_stop(tmp_path: Path) -> None:
    notify = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify))
    listener.setblocking(False)
    messages: list[str] = []
    async with nest_wwn.serve(SimHome.demo(), keepalive_s=0.5) as cloud, serve_sink() as sink:
        config = tmp_path / "roost.toml"
        config.write_text(config_text(cloud.url, cloud.token, sink.url, tmp_path / "s", RULES))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
        env.update(NOTIFY_SOCKET=str(notify), WATCHDOG_USEC="400000")
        process = await anyio.open_process(
            [sys.executable, "-m", "roost", "run", "--config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with anyio.fail_after(20):
            while sum("WATCHDOG=1" in m for m in messages) < 3:
                await anyio.wait_readable(listener)
                messages.append(listener.recv(4096).decode())
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(20):
            code = await process.wait()
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except BlockingIOError:
                break
    listener.close()
    ready = next(m for m in messages if "READY=1" in m)
    assert re.search(r"STATUS=1/1 accounts connected, \d+ rules", ready), ready
    assert messages.index(ready) < next(i for i, m in enumerate(messages) if "WATCHDOG=1" in m)
    assert any("STOPPING=1" in m for m in messages)
    assert code == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_the_unit_is_hardened(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=15", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    score_line = next(line for line in result.stdout.splitlines() if "Overall exposure" in line)
    with capsys.disabled():
        print(f"\n{UNIT.name}: {score_line.strip()}")
    assert result.returncode == 0, result.stdout[-2000:]
    score = float(score_line.split("roost.service:")[-1].split()[0])
    assert score <= 1.5
