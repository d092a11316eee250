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

from common import thermostat_id
from engine_harness import count_once, measure, patches
from engine_nomatch import KINDS, RULES

FEED = 60_000


async def unwatched(changes: int) -> None:
    thermostats, attribute, changed, values = KINDS["unwatched"]
    feed = patches(attribute, [thermostat_id(i) for i in changed], FEED, 1, values)
    await measure(thermostats, RULES, feed[:changes], 0, False)


if __name__ == "__main__":
    count_once(unwatched, 10_000, FEED)
