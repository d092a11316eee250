"""The cyclic garbage collector, kept to short pauses on the event loop.

A pause of the collector is a pause of everything, alarms included, so roost decides when
it collects rather than leaving it to CPython's counters. Those count a young collection
by allocations minus deallocations of any tracked object: a stream's put that replaces a
home's old state with as much new barely moves the count, so with many accounts the
young list grew to 30,000-90,000 objects between collections (30-85 ms pauses at 10,000
accounts, bench/README.md round eleven), and each full collection walked the whole
heap of every account (1.2-1.6 s there).

Once ready (`settle_memory`) the start-up heap is frozen, out of every collection's reach.
From then on `pace_collections` collects the young generation after every
`YOUNG_AFTER_CPU_S` of the process's CPU (what it can have left alive in that time; about
every tenth of a second at 10,000 accounts under load, a pause well under a millisecond),
the middle one every `MIDDLE_EVERY` young collections, and everything every
`FULL_EVERY_S` (the one long pause, at most that often: it reclaims cycles that died
old). An idle daemon is looked at once a second and seldom collected. CPython's own
threshold stays as a net under a burst between two looks.
"""

from __future__ import annotations

import gc
import time

import anyio

# The automatic young collection, now only a net: every 10,000 net allocations instead of
# 700 (a rule run makes a few dozen short-lived objects, nearly all freed by reference
# counting; the default threshold spent 10-12 % of the engine's CPU in collections).
GC_YOUNG_THRESHOLD = 10_000
YOUNG_AFTER_CPU_S = 0.01
MIDDLE_EVERY = 3  # young collections
FULL_EVERY_S = 600.0
LOOK_BUSY_S = 0.1  # after a collection
LOOK_IDLE_S = 1.0  # after a look that found too little CPU spent to collect


def settle_memory() -> None:
    """Once ready: what start-up made (modules, settings, rules, the first snapshots) is
    here to stay, so take it out of the collector's reach. Full collections then walk only
    what came later instead of pausing the loop for tens of milliseconds."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    trim_heap()


async def pace_collections(
    young_after_cpu_s: float = YOUNG_AFTER_CPU_S,
    middle_every: int = MIDDLE_EVERY,
    full_every_s: float = FULL_EVERY_S,
    look_s: tuple[float, float] = (LOOK_BUSY_S, LOOK_IDLE_S),
) -> None:
    """Collect on the loop's clock and the process's CPU, not on allocation counts (see
    the module's text). `look_s`: how long to wait after a collection, and after a look
    that found nothing to do."""
    busy_s, idle_s = look_s
    young = 0
    full_at = anyio.current_time() + full_every_s
    cpu_mark = time.process_time()
    wait = busy_s
    while True:
        await anyio.sleep(wait)
        if anyio.current_time() >= full_at:
            gc.collect()
            full_at = anyio.current_time() + full_every_s
        elif time.process_time() - cpu_mark >= young_after_cpu_s:
            young += 1
            gc.collect(1 if young % middle_every == 0 else 0)
        else:
            wait = idle_s
            continue
        cpu_mark = time.process_time()
        wait = busy_s


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system. Start-up frees more than it keeps
    (parsed settings and rule files, the first snapshot's JSON, import-time temporaries),
    and glibc returns only the top of its heap by itself. glibc only; elsewhere nothing."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass
