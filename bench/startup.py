"""Cold start to READY, and idle RSS and CPU, of `roost run` with one account.

    .venv/bin/python bench/startup.py [--runs 7] [--idle 20]

This process serves the WWN simulator (the demo home, keep-alives every 30 s as the vendor
sends them) and a notification sink, and listens on a datagram socket as systemd's
`NOTIFY_SOCKET` does. Each run spawns a fresh `python -m roost run --config …` (the repo's
example rules from `rules/`, one `nest_wwn` account, one apprise target, a new empty state
directory) and times exec → the `READY=1` datagram: interpreter start, imports, settings,
store, rules, apprise plugins, the first connection and snapshot. Bytecode caches are
present (as after `pip install`); see OPERATIONS.md §6 for the floor of each import.

After the last start the daemon is left alone for `--idle` seconds (after a 2 s settle):
RSS is read from /proc (VmRSS at the end, and VmHWM, the peak) and idle CPU is the process's
user+system time over the window divided by the window. Then SIGTERM, and the time to exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
from anyio.abc import Process

from common import Summary, header, quiet_logging
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import serve_sink

REPO = Path(__file__).resolve().parent.parent
TARGET_READY_S = 1.0
TARGET_RSS_MIB = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def config_text(cloud_url: str, token: str, sink_url: str, state_dir: Path) -> str:
    return f"""
[daemon]
rules_dir = "{REPO / "rules"}"
state_dir = "{state_dir}"

[log]
level = "info"
format = "json"

[[accounts]]
name = "home"
provider = "nest_wwn"
api_url = "{cloud_url}"
token = "{token}"

[[notify.targets]]
url = "{sink_url}"
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def memory_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


async def start(config: Path, notify: socket.socket, notify_path: Path) -> tuple[Process, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    env["NOTIFY_SOCKET"] = str(notify_path)
    started = time.perf_counter()
    process = await anyio.open_process(
        [sys.executable, "-m", "roost", "run", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with anyio.fail_after(30):
        while True:
            await anyio.wait_readable(notify)
            if "READY=1" in notify.recv(4096).decode():
                return process, time.perf_counter() - started


async def stop(process: Process) -> float:
    started = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    with anyio.fail_after(30):
        code = await process.wait()
    if code != 0:
        raise RuntimeError(f"roost exited with {code}")
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        notify_path = Path(tmp) / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.setblocking(False)
        async with nest_wwn.serve(SimHome.demo(), keepalive_s=30.0) as cloud, serve_sink() as sink:
            ready: list[float] = []
            for run in range(args.runs + 1):
                config = Path(tmp) / f"roost-{run}.toml"
                state_dir = Path(tmp) / f"state-{run}"
                config.write_text(config_text(cloud.url, cloud.token, sink.url, state_dir))
                process, seconds = await start(config, notify, notify_path)
                if run > 0:  # the first start warms the page cache
                    ready.append(seconds)
                if run < args.runs:
                    await stop(process)
            s = Summary.of(ready)
            verdict = "MEETS target" if s.median <= TARGET_READY_S else "MISSES target"
            print(
                f"   cold start, exec → READY=1: {s.median * 1e3:6.0f} ms (min {s.min * 1e3:.0f}, "
                f"max {s.max * 1e3:.0f}); target ≤ {TARGET_READY_S * 1e3:.0f} ms: {verdict}",
                flush=True,
            )
            await anyio.sleep(2.0)  # settle: the first snapshot, the journal, the outbox
            cpu0, wall0 = cpu_seconds(process.pid), time.perf_counter()
            await anyio.sleep(args.idle)
            cpu = (cpu_seconds(process.pid) - cpu0) / (time.perf_counter() - wall0)
            rss = memory_kib(process.pid, "VmRSS") / 1024
            peak = memory_kib(process.pid, "VmHWM") / 1024
            verdict = "MEETS target" if rss <= TARGET_RSS_MIB else "MISSES target"
            print(
                f"   idle, one account: RSS {rss:.1f} MiB (peak {peak:.1f}); "
                f"target ≤ {TARGET_RSS_MIB:.0f} MiB: {verdict}; CPU {cpu:.2%} over {args.idle:g} s",
                flush=True,
            )
            stopped = await stop(process)
            print(f"   SIGTERM → exit 0: {stopped * 1e3:.0f} ms")
        notify.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--log-level", default="warning")
    arguments = parser.parse_args()
    quiet_logging(arguments.log_level)
    header(
        "startup: `roost run`, one nest_wwn account, the example rules, one apprise target",
        f"{arguments.runs} starts (+1 warm-up), then {arguments.idle:g} s idle",
    )
    anyio.run(main, arguments)
