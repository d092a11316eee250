"""The cloud side of `stream_latency.py`, in its own process: the WWN simulator and a load.

Not a benchmark by itself; `stream_latency.py` starts it. Protocol on stdin/stdout:

1. it prints `READY <url> <token>` once the simulator listens;
2. it waits for a line on stdin (the daemon is connected), then makes `--rate` changes a
   second for `--seconds`, round-robin over its thermostats, waits `--drain` seconds for
   the last writes, and
3. prints one JSON line: the time of every change (change n at index n), every setpoint
   write it applied as `[n, time]`, the count of writes it refused, and its own CPU share
   over the load (it shares the machine with the daemon: the benchmark must not be the
   bottleneck). Times are
   `time.time()`, one clock for every process of the machine.

Change n sets the humidity reading of thermostat n mod 10 to `common.reading(n)`, (n + 1)
/ 1000 %: the reading names the change, and stays a valid humidity. The benchmark's rule
writes the setpoint `setpoint(n)`, so each write names the change that caused it,
exactly, even when two changes of one thermostat reach the daemon in one put.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anyio

from common import READING_WRAP, quiet_logging, reading
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome, SimStructure, SimThermostat

STRUCTURE = "structure-bench"
BASE_C = 10.0
SCALE = 10_000
WRAP = READING_WRAP  # setpoints stay within 10.0-19.9 °C, inside every guard's band


def setpoint(n: int) -> float:
    """The heat setpoint (°C) the benchmark's rule writes for change n."""
    return BASE_C + (n % WRAP) / SCALE


def sequence(celsius: float) -> int:
    """The change a written setpoint names (modulo WRAP)."""
    return round((celsius - BASE_C) * SCALE)


class TimedHome(SimHome):
    """A `SimHome` that stamps every setpoint write it applies."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[int, float]] = []

    def set_target(self, device_id: str, celsius: float) -> None:
        self.written.append((sequence(celsius), time.time()))
        super().set_target(device_id, celsius)


def build_home(thermostats: int) -> TimedHome:
    home = TimedHome()
    home.add(SimStructure(id=STRUCTURE, name="Bench"))
    for i in range(thermostats):
        home.add(
            SimThermostat(
                id=f"thermostat-{i:02d}",
                name=f"Room {i}",
                structure_id=STRUCTURE,
                room=f"Room {i}",
                mode="heat",
                target_c=20.0,
                ambient_c=20.0,
                humidity=0,  # no change's reading: the first change is a change
            )
        )
    return home


async def generate(home: SimHome, rate: float, seconds: float) -> list[float]:
    """Change one humidity reading every 1/rate s, on schedule (late ones go at once).
    Returns the time of each change."""
    thermostats = [home.thermostats[k] for k in sorted(home.thermostats)]
    changed_at: list[float] = []
    start = time.monotonic()
    for n in range(int(rate * seconds)):
        await anyio.sleep(max(0.0, start + n / rate - time.monotonic()))
        thermostats[n % len(thermostats)].humidity = reading(n)  # type: ignore[assignment]
        home.changed()
        changed_at.append(time.time())
    return changed_at


async def main(args: argparse.Namespace) -> None:
    home = build_home(args.thermostats)
    async with nest_wwn.serve(home, keepalive_s=2.0) as cloud:
        print(f"READY {cloud.url} {cloud.token}", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        changes = await generate(home, args.rate, args.seconds)
        share = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        await anyio.sleep(args.drain)
        refused = sum(1 for r in cloud.requests if r.status >= 400)
        result = {"changes": changes, "writes": home.written, "refused": refused, "cpu": share}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="WWN simulator with a steady change load")
    parser.add_argument("--thermostats", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=1.0)
    quiet_logging()
    anyio.run(main, parser.parse_args())
