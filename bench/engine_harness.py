"""The in-process pipeline the engine benchmarks drive: state diff → bus → engine → dispatch.

Everything is the daemon's own code (`HomeState`, `Bus`, `Engine`, `Dispatcher` with the
real guards), wired as `Runtime` wires it, minus the providers: the benchmark plays the
provider and calls `HomeState.patch` itself. The dispatcher runs in dry-run mode, so every
command passes the guards and ends as a DRY_RUN outcome on the bus; nothing is sent.

A "change" is one `model.Change`: one attribute of one device taking a new value. A patch
(one vendor push) carries `batch` changes, each for a different device.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from common import ACCOUNT, build_devices, thermostat_id

from roost.api import RuleHome, Services
from roost.bus import Batch, Bus
from roost.commands import Command
from roost.dispatch import Dispatcher
from roost.echo import EchoTracker
from roost.engine import Engine
from roost.events import CommandOutcome, Outcome, TemperatureChanged
from roost.guards import Limits
from roost.model import Change, Home, ThermostatMode
from roost.notify import Notification
from roost.rules import Rule, when
from roost.state import HomeState

HEAT_TO_C = 21.0
COLD_BELOW_C = 21.0


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


def keep_warm(room: str) -> Any:
    async def body(event: TemperatureChanged, home: RuleHome) -> None:
        for thermostat in home.thermostats(name=room):
            await thermostat.set_heat(HEAT_TO_C)

    return body


def rules(count: int) -> list[Rule]:
    """`count` rules; rule i watches the temperature of thermostat i."""
    return [
        Rule(
            name=f"keep room {i} warm",
            triggers=(when("temperature", device=thermostat_id(i)),),
            body=keep_warm(f"Room {i}"),
            condition=is_cold_and_heating,
        )
        for i in range(count)
    ]


# ---- the pipeline ---------------------------------------------------------------------------


@dataclass
class Pipeline:
    bus: Bus
    state: HomeState
    engine: Engine
    inbox: MemoryObjectReceiveStream[Batch]
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    expected_outcomes: int = 0
    all_done: anyio.Event = field(default_factory=anyio.Event)

    def count(self, outcome: CommandOutcome) -> None:
        self.outcomes[outcome.outcome] = self.outcomes.get(outcome.outcome, 0) + 1
        if sum(self.outcomes.values()) >= self.expected_outcomes:
            self.all_done.set()


async def build(thermostats: int, rule_count: int) -> Pipeline:
    """A home of `thermostats` in one account (as its baseline snapshot) and the rules."""
    bus = Bus()
    echoes = EchoTracker()
    state = HomeState(bus, echoes)
    dispatcher = Dispatcher(state, bus, echoes, Limits(), dry_run=True)

    async def notify(notification: Notification) -> None:
        return None

    pipeline: Pipeline

    async def submit(command: Command) -> CommandOutcome:
        outcome = await dispatcher.submit(command)
        pipeline.count(outcome)
        return outcome

    engine = Engine(Services(state, submit, notify, lambda: datetime.now(UTC)))
    engine.load(rules(rule_count))
    inbox = bus.subscribe("engine")
    pipeline = Pipeline(bus, state, engine, inbox)
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


async def feed(pipeline: Pipeline, feed_patches: list[list[Change]], rule_runs: int) -> float:
    """Run the engine, push every patch, wait until the engine is idle and `rule_runs`
    commands have their outcome. Returns the seconds from the first patch to that point."""
    pipeline.expected_outcomes = rule_runs
    if rule_runs == 0:
        pipeline.all_done.set()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pipeline.engine.run, pipeline.inbox)
        await anyio.sleep(0)
        started = time.perf_counter()
        for changes in feed_patches:
            await pipeline.state.patch(ACCOUNT, changes, datetime.now(UTC))
        await pipeline.all_done.wait()
        while pipeline.inbox.statistics().current_buffer_used:
            await anyio.sleep(0)
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    return elapsed


def check(pipeline: Pipeline, rule_runs: int) -> None:
    """Every change fired exactly the rule runs expected, and each ended as a dry run."""
    stats = pipeline.engine.stats.values()
    fired = sum(s.fired for s in stats)
    errors = sum(s.errors + s.timeouts for s in stats)
    dry = pipeline.outcomes.get(Outcome.DRY_RUN, 0)
    if fired != rule_runs or errors or dry != rule_runs:
        raise AssertionError(
            f"expected {rule_runs} runs ending in dry run; fired {fired}, errors {errors}, "
            f"outcomes {pipeline.outcomes}"
        )
