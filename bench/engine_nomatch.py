"""Changes per second that match none of 1,000 loaded rules.

    .venv/bin/python bench/engine_nomatch.py [--changes N] [--runs N] [--log-level warning]

The same pipeline and the same 1,000 rules as `engine_fire.py` (rule i watches the
temperature of thermostat i), fed changes that no rule matches, in two kinds:

- humidity: `humidity` changes of the 1,000 watched thermostats. The diff makes one
  `AttributeChanged` per change, an event name no rule is indexed under.
- unwatched: `ambient_c` changes of 1,000 further thermostats in the same account that no
  rule watches. The diff makes an `AttributeChanged` and a `TemperatureChanged` per change;
  the engine looks the second up in its per-device index and finds nothing.

A change is one attribute of one device; patches carry 1 or 10 changes (different devices).
A run is timed from the first patch until the engine has consumed every batch from the bus.
"""

from __future__ import annotations

import argparse

import anyio
from common import Summary, header, quiet_logging, thermostat_id, verdict
from engine_harness import build, check, feed, patches

WATCHED = 1_000
RULES = 1_000
TARGET_CHANGES_PER_S = 150_000

# kind → (thermostats in the home, attribute changed, the devices changed, the two values)
KINDS = {
    "humidity": (WATCHED, "humidity", range(WATCHED), (46.0, 45.0)),
    "unwatched": (2 * WATCHED, "ambient_c", range(WATCHED, 2 * WATCHED), (18.5, 18.0)),
}


async def one_run(kind: str, changes: int, batch: int) -> float:
    thermostats, attribute, changed, values = KINDS[kind]
    pipeline = await build(thermostats, RULES)
    devices = [thermostat_id(i) for i in changed]
    feed_patches = patches(attribute, devices, changes, batch, values)
    elapsed = await feed(pipeline, feed_patches, rule_runs=0)
    check(pipeline, rule_runs=0)
    return changes / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100_000, help="changes per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    quiet_logging(args.log_level)
    header(
        "engine_nomatch: state diff → bus → engine, no rule matches",
        f"{RULES} rules, {args.changes} changes a run, {args.runs} runs (+1 warm-up), "
        f"log level {args.log_level}",
    )
    for kind in KINDS:
        for batch in (1, 10):
            anyio.run(one_run, kind, min(args.changes, 10_000), batch)  # warm-up
            rates = [anyio.run(one_run, kind, args.changes, batch) for _ in range(args.runs)]
            s = Summary.of(rates)
            print(
                f"   {kind:<9} batch {batch:>2}: {s.median:>9,.0f} changes/s "
                f"(min {s.min:,.0f}, max {s.max:,.0f}); target ≥ {TARGET_CHANGES_PER_S:,}: "
                f"{verdict(s.median, TARGET_CHANGES_PER_S)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
