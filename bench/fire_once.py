"""engine_fire's rule runs once, N changes on the engine path: the program to count under
valgrind, where instructions per rule run are the load-free measure.

    for n in 1000 6000; do
        valgrind --tool=callgrind --callgrind-out-file=cg.$n .venv/bin/python bench/fire_once.py $n
    done
    # instructions per run = (total of cg.6000 - total of cg.1000) / 5000 (the `summary:` line)
"""

from __future__ import annotations

import sys

import anyio

from common import quiet_logging, thermostat_id
from engine_harness import measure, patches

THERMOSTATS = 1_000
RULES = 1_000


async def fire(changes: int) -> None:
    devices = [thermostat_id(i) for i in range(THERMOSTATS)]
    feed = patches("ambient_c", devices, changes, 1, (18.5, 18.0))
    await measure(THERMOSTATS, RULES, feed, changes, False)


if __name__ == "__main__":
    quiet_logging("warning")
    anyio.run(fire, int(sys.argv[1]) if len(sys.argv) > 1 else 1_000)
