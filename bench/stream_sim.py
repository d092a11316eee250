"""The cloud side of `stream_latency.py`, in its own process: the WWN simulator and a load.

Not a benchmark by itself; `stream_latency.py` starts it. Protocol on stdin/stdout:

1. it prints `READY <url> <token>` once the simulator listens;
2. it waits for a line on stdin (the daemon is connected), then changes the ambient
   temperature of its thermostats round-robin at `--rate` changes per second for
   `--seconds`, waits `--drain` seconds for the last writes, and
3. prints one JSON line: every change `[device, °C, time]` and every setpoint write the
   simulator applied `[device, °C, time]`, times from `time.time()` (the same clock in
   every process of the machine), and the count of writes it refused.

Each thermostat cycles through 40 values (10.0 … 29.5 °C), so a change of one thermostat
is never to the value it holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anyio

from common import quiet_logging
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome, SimStructure, SimThermostat

VALUES = tuple(10.0 + 0.5 * k for k in range(40))
STRUCTURE = "structure-bench"


class TimedHome(SimHome):
    """A `SimHome` that stamps every setpoint write it applies."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[tuple[str, float, float]] = []

    def set_target(self, device_id: str, celsius: float) -> None:
        self.written.append((device_id, celsius, time.time()))
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
            )
        )
    return home


async def generate(home: SimHome, rate: float, seconds: float) -> list[tuple[str, float, float]]:
    """Change one ambient temperature every 1/rate s, on schedule (late ones go at once)."""
    devices = sorted(home.thermostats)
    changes: list[tuple[str, float, float]] = []
    start = time.monotonic()
    for n in range(int(rate * seconds)):
        await anyio.sleep(max(0.0, start + n / rate - time.monotonic()))
        device = devices[n % len(devices)]
        value = VALUES[(n // len(devices)) % len(VALUES)]
        home.set_ambient(device, value)
        changes.append((device, value, time.time()))
    return changes


async def main(args: argparse.Namespace) -> None:
    home = build_home(args.thermostats)
    async with nest_wwn.serve(home, keepalive_s=2.0) as cloud:
        print(f"READY {cloud.url} {cloud.token}", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        changes = await generate(home, args.rate, args.seconds)
        await anyio.sleep(args.drain)
        refused = sum(1 for r in cloud.requests if r.status >= 400)
        result = {"changes": changes, "writes": home.written, "refused": refused}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="WWN simulator with a steady change load")
    parser.add_argument("--thermostats", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=1.0)
    quiet_logging()
    anyio.run(main, parser.parse_args())
