"""engine_nomatch's unwatched changes, N of them on the engine path: the program to count
under valgrind, as `fire_once.py` is for rule runs.

    for n in 10000 60000; do
        valgrind --tool=callgrind --callgrind-out-file=cg.$n \
            .venv/bin/python bench/unwatched_once.py $n
    done
    # instructions per change = (total of cg.60000 - total of cg.10000) / 50000 (`summary:`)

The same feed (60,000 `ambient_c` changes of thermostats no rule watches, one per patch, as
`anchor_roost.py` feeds them) is built in both runs and the process ends right after the
last, so the difference counts the timed window and nothing else.
"""

from __future__ import annotations

import os
import sys

import anyio

import engine_harness
from common import quiet_logging, thermostat_id
from engine_harness import measure, patches
from engine_nomatch import KINDS, RULES

FEED = 60_000


async def unwatched(changes: int) -> None:
    thermostats, attribute, changed, values = KINDS["unwatched"]
    feed = patches(attribute, [thermostat_id(i) for i in changed], FEED, 1, values)
    await measure(thermostats, RULES, feed[:changes], 0, False)


if __name__ == "__main__":
    quiet_logging("warning")
    engine_harness.TIMEOUT_S = 24 * 3600.0
    changes = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    if not 0 < changes <= FEED:
        sys.exit(f"changes: 1 to {FEED}")
    anyio.run(unwatched, changes)
    sys.stdout.flush()
    os._exit(0)  # measure's check passed (it raises otherwise): skip teardown and exit work
