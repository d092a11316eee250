"""Changes per second that match none of 1,000 loaded rules.

    .venv/bin/python bench/engine_nomatch.py [--changes N] [--store-changes N] [--runs N]

The same pipeline and the same 1,000 rules as `engine_fire.py` (rule i watches the
temperature of thermostat i), fed changes that no rule matches, of two kinds:

- humidity: `humidity` changes of the 1,000 watched thermostats. The diff makes one
  `AttributeChanged` per change, an event name no rule is indexed under.
- unwatched: `ambient_c` changes of 1,000 further thermostats in the same account that no
  rule watches. The diff makes an `AttributeChanged` and a `TemperatureChanged` per change;
  the engine looks the second up in its per-device index and finds nothing.

A change is one attribute of one device; patches carry 1 or 10 changes (different devices).
A run is timed from the first patch until the engine has taken every batch off the bus.
For reference, humidity changes are also measured with the store wired as `Runtime` does.
"""

from __future__ import annotations

import argparse

import anyio

from common import HA_STATE_CHANGES_PER_CPU_S, figure, header, load, quiet_logging, thermostat_id
from engine_harness import measure, patches

WATCHED = 1_000
RULES = 1_000
TARGET_CHANGES_PER_S = 4 * HA_STATE_CHANGES_PER_CPU_S  # per CPU-second

# kind → (thermostats in the home, attribute changed, the devices changed, the two values)
KINDS = {
    "humidity": (WATCHED, "humidity", range(WATCHED), (46.0, 45.0)),
    "unwatched": (2 * WATCHED, "ambient_c", range(WATCHED, 2 * WATCHED), (18.5, 18.0)),
}


async def one_run(kind: str, changes: int, batch: int, store: bool) -> tuple[float, float]:
    thermostats, attribute, changed, values = KINDS[kind]
    devices = [thermostat_id(i) for i in changed]
    feed_patches = patches(attribute, devices, changes, batch, values)
    return await measure(thermostats, RULES, feed_patches, 0, store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50_000, help="changes a run")
    parser.add_argument("--store-changes", type=int, default=5_000, help="… with the store")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    quiet_logging(args.log_level)
    header(
        "engine_nomatch: state diff → bus → engine, no rule matches",
        f"{RULES} rules, {args.runs} runs (+1 warm-up) of {args.changes} changes "
        f"({args.store_changes} with the store), log level {args.log_level}",
    )
    configs = [(kind, False) for kind in KINDS] + [("humidity", True)]
    for kind, store in configs:
        changes = args.store_changes if store else args.changes
        wiring = "with store " if store else "engine path"
        for batch in (1, 10):
            anyio.run(one_run, kind, min(changes, 5_000), batch, store)  # warm-up
            rates = [anyio.run(one_run, kind, changes, batch, store) for _ in range(args.runs)]
            label = f"{wiring}, {kind:<9}, batch {batch:>2}"
            print(figure(label, rates, "changes/s", TARGET_CHANGES_PER_S), flush=True)
    print(f"   {load()} at end")


if __name__ == "__main__":
    main()
