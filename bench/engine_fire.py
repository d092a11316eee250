"""Rule runs per second: changes that each fire exactly one of 1,000 rules.

    .venv/bin/python bench/engine_fire.py [--changes N] [--runs N] [--log-level warning]

A home of 1,000 thermostats in one account (50 structures of 20) is the baseline snapshot.
Rule i triggers on `when("temperature", device=<thermostat i>)`, its Python condition reads
the device through `home.device()` (below 21 °C and in heat mode), and its body finds the
thermostat with `home.thermostats(name=...)` and calls `set_heat(21)`. The dispatcher is in
dry run with the real guards, so each run ends as one DRY_RUN outcome on the bus.

Each change is one `ambient_c` change of one thermostat, fed through `HomeState.patch` in
patches of 1 and of 10 changes (different thermostats), with the engine consuming from the
bus in the same event loop. A run is timed from the first patch until every rule run has
its outcome. Figure: rule runs per second (= changes per second here).
"""

from __future__ import annotations

import argparse

import anyio
from common import Summary, header, quiet_logging, thermostat_id, verdict
from engine_harness import build, check, feed, patches

THERMOSTATS = 1_000
RULES = 1_000
TARGET_RUNS_PER_S = 30_000


async def one_run(changes: int, batch: int) -> float:
    pipeline = await build(THERMOSTATS, RULES)
    devices = [thermostat_id(i) for i in range(THERMOSTATS)]
    feed_patches = patches("ambient_c", devices, changes, batch, (18.5, 18.0))
    elapsed = await feed(pipeline, feed_patches, rule_runs=changes)
    check(pipeline, rule_runs=changes)
    return changes / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000, help="changes per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    quiet_logging(args.log_level)
    header(
        "engine_fire: state diff → bus → engine → rule run → guards → dry-run outcome",
        f"{THERMOSTATS} thermostats, {RULES} rules, {args.changes} changes a run, "
        f"{args.runs} runs (+1 warm-up), log level {args.log_level}",
    )
    for batch in (1, 10):
        anyio.run(one_run, min(args.changes, 1_000), batch)  # warm-up
        rates = [anyio.run(one_run, args.changes, batch) for _ in range(args.runs)]
        s = Summary.of(rates)
        print(
            f"   batch {batch:>2}: {s.median:>9,.0f} rule runs/s "
            f"(min {s.min:,.0f}, max {s.max:,.0f}); target ≥ {TARGET_RUNS_PER_S:,}: "
            f"{verdict(s.median, TARGET_RUNS_PER_S)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
