"""The in-process pipeline the engine benchmarks drive: state diff → bus → engine → dispatch.

Everything is the daemon's own code, wired as `roost.service.runtime.Runtime` wires it: `HomeState`,
`Bus`, `EchoTracker`, the `Engine` built by `roost.service.runtime.engine` from default settings,
and a `Dispatcher` with the real guards in dry-run mode, so every command passes the guards
and ends as a DRY_RUN outcome on the bus; nothing is sent. The benchmark plays the provider
and calls `HomeState.patch` itself.

Two wirings:

- engine path (`store=False`): nothing else subscribes to the bus, and the state keeps its
  change versions in memory only. This is the path the targets are set for.
- as `Runtime` wires it (`store=True`): a SQLite `Store` in a temporary directory and the
  `Persister` on top, so every patch first makes its change versions durable
  (the state's `HomeKeeper`) and every event is also written to the journal.

A "change" is one `model.Change`: one attribute of one device taking a new value. A patch
(one vendor push) carries `batch` changes, each for a different device.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel

from common import ACCOUNT, build_devices, quiet_logging, thermostat_id
from roost.commands.dispatch import Dispatcher
from roost.commands.guards import Limits
from roost.config.settings import Settings
from roost.core.bus import Batch, Bus
from roost.core.clock import SystemClock
from roost.core.commands import Command
from roost.core.events import CommandOutcome, Event, Outcome, Started, TemperatureChanged
from roost.core.inbox import Inbox
from roost.core.model import Change, Home, ThermostatMode
from roost.engine.engine import Engine
from roost.engine.rule_home import Found, RuleHome, Services
from roost.notify.notifier import Notification
from roost.rules.author import Rule, RuleBody, when
from roost.service.collector import settle_memory
from roost.service.persist import HomeKeeper, Persister
from roost.service.runtime import engine as build_engine
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.store.sqlite import Store

HEAT_TO_C = 21.0
COLD_BELOW_C = 21.0
MAX_RUNS = 100  # the run-mode cap, raised from 10 so that a flood never skips a run
TIMEOUT_S = 120.0


# ---- the rules: one per thermostat, as a home's owner would write it --------------------


def is_cold_and_heating(event: TemperatureChanged, home: RuleHome) -> bool:
    """Condition: the room is below 21 °C and its thermostat is in heat mode."""
    thermostat = home.device()
    return (
        event.new is not None
        and event.new < COLD_BELOW_C
        and thermostat is not None
        and thermostat.mode == ThermostatMode.HEAT
    )


def keep_warm(room: str) -> RuleBody:
    async def body(event: TemperatureChanged, home: RuleHome) -> None:
        for thermostat in home.thermostats(name=room):
            await thermostat.set_heat(HEAT_TO_C)

    return body


def rules(count: int) -> list[Rule]:
    """`count` rules; rule i watches the temperature of thermostat i ("Room i")."""
    return [
        Rule(
            name=f"keep room {i} warm",
            triggers=(when("temperature", device=thermostat_id(i)),),
            body=keep_warm(f"Room {i}"),
            condition=is_cold_and_heating,
            max_runs=MAX_RUNS,
        )
        for i in range(count)
    ]


# ---- the pipeline ---------------------------------------------------------------------------


@dataclass
class Pipeline:
    bus: Bus
    state: HomeState
    engine: Engine
    inbox: Inbox[Batch]
    persister: Persister | None = None
    store: Store | None = None
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    expected_outcomes: int = 0
    counted: int = 0  # outcomes so far (the sum of `outcomes`, kept as it grows)
    all_done: anyio.Event = field(default_factory=anyio.Event)

    def count(self, outcome: CommandOutcome) -> None:
        self.outcomes[outcome.outcome] = self.outcomes.get(outcome.outcome, 0) + 1
        self.counted += 1
        if self.counted >= self.expected_outcomes:
            self.all_done.set()


async def build(thermostats: int, rule_count: int, store_dir: Path | None = None) -> Pipeline:
    """A home of `thermostats` in one account (its baseline snapshot) and the rules; with
    `store_dir`, the store and the persister as `Runtime` wires them."""
    clock = SystemClock()
    bus = Bus()
    echoes = EchoTracker(clock=clock)
    store = Store.open(store_dir) if store_dir is not None else None
    state = HomeState(bus, echoes, keeper=HomeKeeper(store, clock) if store else None)
    dispatcher = Dispatcher(state, bus, echoes, Limits(), dry_run=True, clock=clock)

    async def notify(notification: Notification) -> None:
        return None

    async def submit(
        command: Command, now: datetime | None = None, found: Found | None = None
    ) -> CommandOutcome:
        outcome = await dispatcher.submit(command, now, found)
        pipeline.count(outcome)
        return outcome

    services = Services(state, submit, notify, lambda: datetime.now(UTC), clock=clock)
    engine = build_engine(Settings(), services)
    engine.load(rules(rule_count))
    pipeline = Pipeline(bus, state, engine, bus.subscribe("engine", interest=engine.interest))
    if store is not None:
        pipeline.store = store
        pipeline.persister = Persister(store, state, bus, clock)
    structures, devices = build_devices(thermostats)
    await state.snapshot(ACCOUNT, Home(ACCOUNT, structures, devices), datetime.now(UTC))
    return pipeline


def patches(
    attribute: str, devices: Sequence[str], total: int, batch: int, values: tuple[float, float]
) -> list[list[Change]]:
    """`total` changes of `attribute`, `batch` to a patch, cycling over `devices`.

    Each pass over the devices switches to the other value, so every change is a change.
    """
    out: list[list[Change]] = []
    for start in range(0, total, batch):
        patch = []
        for n in range(start, min(start + batch, total)):
            device = devices[n % len(devices)]
            value = values[(n // len(devices)) % 2]
            patch.append(Change(device, attribute, value))
        out.append(patch)
    return out


@dataclass(frozen=True)
class Timing:
    wall_s: float  # elapsed time: what the targets are about
    cpu_s: float  # CPU time of this process (all threads): steadier on a busy machine


async def feed(pipeline: Pipeline, feed_patches: list[list[Change]], rule_runs: int) -> Timing:
    """Run the engine, push every patch, wait until the engine is idle and `rule_runs`
    commands have their outcome; the time from the first patch to that point."""
    if rule_runs >= 0:  # a negative count: the caller sets `all_done` itself
        pipeline.expected_outcomes = rule_runs
    if rule_runs == 0:
        pipeline.all_done.set()
    with anyio.fail_after(TIMEOUT_S):
        async with anyio.create_task_group() as tg:
            tg.start_soon(pipeline.engine.run, pipeline.inbox)
            if pipeline.persister is not None:
                tg.start_soon(pipeline.persister.run)
            await anyio.sleep(0.01)  # the engine is up (its start-up work is not timed)
            settle_memory()  # as `roost run` does once ready (GC: freeze, young threshold)
            started, cpu_started = time.perf_counter(), time.process_time()
            for changes in feed_patches:
                await pipeline.state.patch(ACCOUNT, changes, datetime.now(UTC))
            await pipeline.all_done.wait()
            while len(pipeline.inbox):
                await anyio.lowlevel.checkpoint()
            timing = Timing(time.perf_counter() - started, time.process_time() - cpu_started)
            tg.cancel_scope.cancel()
    if pipeline.store is not None:
        pipeline.store.close()
    return timing


async def measure(
    thermostats: int,
    rule_count: int,
    feed_patches: list[list[Change]],
    rule_runs: int,
    store: bool,
) -> tuple[float, float]:
    """Build a fresh pipeline, feed it, check it: changes per second of elapsed time, and
    per second of CPU time."""
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        pipeline = await build(thermostats, rule_count, Path(tmp) if store else None)
        timing = await feed(pipeline, feed_patches, rule_runs)
        check(pipeline, rule_runs)
    changes = sum(len(p) for p in feed_patches)
    return changes / timing.wall_s, changes / timing.cpu_s


def check(pipeline: Pipeline, rule_runs: int) -> None:
    """Every change fired exactly the rule runs expected, and each ended as a dry run."""
    stats = pipeline.engine.stats.values()
    fired = sum(s.fired for s in stats)
    problems = sum(s.errors + s.timeouts + s.skipped_mode + s.skipped_condition for s in stats)
    dry = pipeline.outcomes.get(Outcome.DRY_RUN, 0)
    if fired != rule_runs or problems or dry != rule_runs:
        raise AssertionError(
            f"expected {rule_runs} runs ending in dry run; fired {fired}, "
            f"errors/timeouts/skips {problems}, outcomes {pipeline.outcomes}"
        )


# ---- HA's shape: a body that only publishes an event ------------------------------------


async def measure_publishing(
    thermostats: int, rule_count: int, feed_patches: list[list[Change]], rule_runs: int
) -> tuple[float, float]:
    """As `measure` on the engine path, but each rule's body only publishes one event on
    the bus (what a Home Assistant automation whose action fires an event does): no
    command, guards or dispatcher. Every run is checked to have published."""
    pipeline = await build(thermostats, 0)
    published = 0

    async def publish(event: TemperatureChanged, home: RuleHome) -> None:
        nonlocal published
        await pipeline.bus.publish([Started(id=event.id + "/done", at=event.at, account=ACCOUNT)])
        published += 1
        if published == rule_runs:
            pipeline.all_done.set()

    pipeline.engine.load(
        [
            Rule(
                name=f"publish {i}",
                triggers=(when("temperature", device=thermostat_id(i)),),
                body=publish,
                condition=is_cold_and_heating,
                max_runs=MAX_RUNS,
            )
            for i in range(rule_count)
        ]
    )
    pipeline.expected_outcomes = rule_runs + 1  # never reached by `count`: no commands
    timing = await feed(pipeline, feed_patches, -1)
    if published != rule_runs:
        raise AssertionError(f"expected {rule_runs} published events, got {published}")
    changes = sum(len(p) for p in feed_patches)
    return changes / timing.wall_s, changes / timing.cpu_s


# ---- the engine by itself -------------------------------------------------------------------


async def engine_alone(
    thermostats: int, rule_count: int, runs: int, stop_blocking: bool = True
) -> tuple[float, float]:
    """Rule runs per second of the engine by itself: the same rules and condition, but a
    body that only counts, and the events put straight into the engine's inbox (no state
    diff, no dispatcher, no outcome events). What the engine's own share of a run costs."""
    pipeline = await build(thermostats, 0)
    pipeline.engine.stop_blocking = stop_blocking
    done = 0
    finished = anyio.Event()

    async def count(event: TemperatureChanged, home: RuleHome) -> None:
        nonlocal done
        done += 1
        if done == runs:
            finished.set()

    pipeline.engine.load(
        [
            Rule(
                name=f"count {i}",
                triggers=(when("temperature", device=thermostat_id(i)),),
                body=count,
                condition=is_cold_and_heating,
                max_runs=MAX_RUNS,
            )
            for i in range(rule_count)
        ]
    )
    now = datetime.now(UTC)
    events: list[Sequence[Event]] = [
        [
            TemperatureChanged(
                id=f"e{n}",
                at=now,
                account=ACCOUNT,
                device=thermostat_id(n % rule_count),
                old=18.0,
                new=18.5,
            )
        ]
        for n in range(runs)
    ]
    inbox = Inbox[Sequence[Event]](runs)
    for batch in events:
        inbox.put(batch)
    settle_memory()
    async with anyio.create_task_group() as tg:
        started, cpu_started = time.perf_counter(), time.process_time()
        tg.start_soon(pipeline.engine.run, inbox)
        with anyio.fail_after(TIMEOUT_S):
            await finished.wait()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        tg.cancel_scope.cancel()
    return runs / wall, runs / cpu


def count_once(run: Callable[[int], Awaitable[None]], default: int, most: int) -> None:
    """The main of a program to count under valgrind (`fire_once.py`, `unwatched_once.py`):
    `run(N)` with N from the command line, no time limit (under valgrind on a busy machine a
    run would hit it and count only part of the work), and the process ended at once after
    (no teardown, no collections at exit over what the runs left behind)."""
    global TIMEOUT_S
    quiet_logging("warning")
    TIMEOUT_S = 24 * 3600.0
    changes = int(sys.argv[1]) if len(sys.argv) > 1 else default
    if not 0 < changes <= most:
        sys.exit(f"changes: 1 to {most}")
    anyio.run(run, changes)
    sys.stdout.flush()
    os._exit(0)  # the run's check passed (it raises otherwise): skip teardown and exit work
