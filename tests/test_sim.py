"""`roost sim` serves a simulated cloud and prints the settings for `roost run`; run,
trace and the sink work against it end to end (real subprocesses, loopback HTTP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ROOST = [sys.executable, "-m", "roost"]


def wait_for(what: str, check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def roost(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ROOST, *args], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )


def test_roost_sim_then_run_and_trace_against_it(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    sim_out = tmp_path / "sim.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RUNTIME_DIRECTORY", None)
    sim_args = ["sim", "--vendor", "nest_wwn", "--config-out", str(config)]
    with sim_out.open("w") as out:
        sim = subprocess.Popen(
            [*ROOST, *sim_args, "--state-dir", str(tmp_path / "state")],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )
    run = None
    try:
        wait_for("the settings file", config.exists)
        text = sim_out.read_text()
        assert "settings for `roost run`" in text
        control = text.split("# the simulated home: GET ")[1].split("state")[0]

        # Before any CO event: trace says none was ever seen.
        run = subprocess.Popen(
            [*ROOST, "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
        )
        socket = tmp_path / "state" / "control.sock"
        wait_for("the control socket", socket.exists)
        wait_for(
            "the account to connect",
            lambda: "connected" in roost("status", "--config", str(config)).stdout,
        )
        before = roost("trace", "co alert", "--config", str(config))
        assert before.returncode == 0, before.stderr
        assert "no 'co' event has been seen" in before.stdout

        answer = httpx.post(f"{control}co", json={"device": "alarm-hallway", "state": "warning"})
        assert answer.status_code == 200, answer.text
        wait_for(
            "the rule to run",
            lambda: "co alert  RAN" in roost("trace", "co alert", "--config", str(config)).stdout,
        )
        wait_for("the push at the sink", lambda: "sink: [" in sim_out.read_text())
        assert "CO warning" in sim_out.read_text()
    finally:
        for process in (run, sim):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
    assert sim.returncode == 0
