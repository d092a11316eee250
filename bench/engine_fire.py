"""Rule runs per second: changes that each fire exactly one of 1,000 rules.

    .venv/bin/python bench/engine_fire.py [--changes N] [--store-changes N] [--runs N]

A home of 1,000 thermostats in one account (50 structures of 20) is the baseline snapshot.
Rule i triggers on `when("temperature", device=<thermostat i>)`; its Python condition reads
the device through `home.device()` (below 21 °C and in heat mode), and its body finds the
thermostat with `home.thermostats(name="Room i")` and calls `set_heat(21)`. The rules use
the default run mode (queued) with `max_runs` raised to 100, so a flood of changes never
skips a run. The dispatcher is in dry run with the real guards: each run ends as one
DRY_RUN outcome on the bus, and every run is checked to have ended so.

Each change is one `ambient_c` change of one thermostat, fed through `HomeState.patch` in
patches of 1 and of 10 changes (different thermostats), with the engine consuming from the
bus in the same event loop. A run is timed from the first patch until every rule run has
its outcome. Figure: rule runs per second (= changes per second here), for the engine path
and, for reference, with the store wired as `Runtime` does (see `engine_harness`).

A line "engine alone" is the engine's own share: the same 1,000 rules and condition,
but a body that only counts, with the events put straight into the engine's inbox (no state
diff, no guards or dispatcher, no outcome events back through the bus). It is run again
without the block watchdog (rule code only timed, never stopped): the difference is what
stopping a blocking rule costs per run (the stretch marker and the command count).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Coroutine
from typing import Any

import anyio

from common import HA_AUTOMATION_RUNS_PER_CPU_S, figure, header, load, quiet_logging, thermostat_id
from engine_harness import engine_alone, measure, patches
from roost.engine.isolation import INTERRUPTER, RunGuard, guarded_steps, timed_steps

THERMOSTATS = 1_000
RULES = 1_000
TARGET_RUNS_PER_S = 20 * HA_AUTOMATION_RUNS_PER_CPU_S  # per CPU-second (10× with the store)


async def one_run(changes: int, batch: int, store: bool) -> tuple[float, float]:
    devices = [thermostat_id(i) for i in range(THERMOSTATS)]
    feed_patches = patches("ambient_c", devices, changes, batch, (18.5, 18.0))
    return await measure(THERMOSTATS, RULES, feed_patches, changes, store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=5_000, help="changes a run")
    parser.add_argument("--store-changes", type=int, default=2_000, help="… with the store")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    quiet_logging(args.log_level)
    header(
        "engine_fire: state diff → bus → engine → condition → rule run → guards → dry run",
        f"{THERMOSTATS} thermostats, {RULES} rules, {args.runs} runs (+1 warm-up) of "
        f"{args.changes} changes ({args.store_changes} with the store), "
        f"log level {args.log_level}",
    )
    for store in (False, True):
        changes = args.store_changes if store else args.changes
        wiring = "with store " if store else "engine path"
        for batch in (1, 10):
            anyio.run(one_run, min(changes, 1_000), batch, store)  # warm-up
            rates = [anyio.run(one_run, changes, batch, store) for _ in range(args.runs)]
            label = f"{wiring}, batch {batch:>2}"
            target = TARGET_RUNS_PER_S // 2 if store else TARGET_RUNS_PER_S
            print(figure(label, rates, "rule runs/s", target), flush=True)
    anyio.run(engine_alone, THERMOSTATS, RULES, 1_000)  # warm-up
    rates = [anyio.run(engine_alone, THERMOSTATS, RULES, args.changes) for _ in range(args.runs)]
    print(figure("engine alone, batch  1", rates, "rule runs/s", TARGET_RUNS_PER_S), flush=True)
    unguarded = [
        anyio.run(engine_alone, THERMOSTATS, RULES, args.changes, False) for _ in range(args.runs)
    ]
    print(
        figure("  … without the watchdog", unguarded, "rule runs/s", TARGET_RUNS_PER_S), flush=True
    )
    cost_us = 1e6 / _median(rates) - 1e6 / _median(unguarded)
    print(f"   block watchdog + command cap: {cost_us:+.2f} µs per rule run (medians, CPU)")
    watched, timed = stepper_cost_us()
    print(
        f"   stepper alone (a body with one command call): watched {watched:.2f} µs, "
        f"only timed {timed:.2f} µs per run: {watched - timed:+.2f} µs for the watchdog"
    )
    print(f"   {load()} at end")


def stepper_cost_us(runs: int = 200_000) -> tuple[float, float]:
    """Per-run CPU cost of driving a trivial body (one awaited API-like call) through the
    watched stepper (stretch marker, run guard, roost-code marker, command count) and
    through the old timed-only stepper, without an event loop."""

    def body(guard: RunGuard) -> Coroutine[Any, Any, None]:
        async def command() -> None:
            with guard:
                guard.count_command()

        async def run() -> None:
            await command()

        return run()

    def drive(step: Any) -> None:
        with contextlib.suppress(StopIteration):
            step.send(None)

    armed = INTERRUPTER.acquire(0.5)
    try:
        started = time.process_time()
        for _ in range(runs):
            guard = RunGuard()
            drive(guarded_steps(body(guard), guard, INTERRUPTER if armed else None, 0.25, print))
        watched = (time.process_time() - started) / runs * 1e6
    finally:
        if armed:
            INTERRUPTER.release()
    started = time.process_time()
    for _ in range(runs):
        drive(timed_steps(body(RunGuard()), 0.25, print))
    timed = (time.process_time() - started) / runs * 1e6
    return watched, timed


def _median(rates: list[tuple[float, float]]) -> float:
    """The median CPU-time rate (the second figure of each run)."""
    cpu = sorted(rate for _, rate in rates)
    return cpu[len(cpu) // 2]


if __name__ == "__main__":
    main()
