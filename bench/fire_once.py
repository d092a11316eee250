"""engine_fire's rule runs once, N changes on the engine path: the program to count under
valgrind, where instructions per rule run are the load-free measure.

    for n in 1000 6000; do
        valgrind --tool=callgrind --callgrind-out-file=cg.$n .venv/bin/python bench/fire_once.py $n
    done
    # instructions per run = (total of cg.6000 - total of cg.1000) / 5000 (the `summary:` line)

The difference counts what `anchor.py` times and nothing else: both runs build the same
6,000-change feed before the engine starts, and the process ends at once after the last
run (no teardown, no collections at exit over what the runs left behind). Counting those
too, as this program did until round eight, hid that a change which made runs dearer
saved collector work at exit. The harness's time limit is lifted: under valgrind on a busy
machine a run would hit it and stop early, and count only part of the work.
"""

from __future__ import annotations

from common import thermostat_id
from engine_harness import count_once, measure, patches

THERMOSTATS = 1_000
RULES = 1_000
FEED = 6_000


async def fire(changes: int) -> None:
    devices = [thermostat_id(i) for i in range(THERMOSTATS)]
    feed = patches("ambient_c", devices, FEED, 1, (18.5, 18.0))
    await measure(THERMOSTATS, RULES, feed[:changes], changes, False)


if __name__ == "__main__":
    count_once(fire, 1_000, FEED)
