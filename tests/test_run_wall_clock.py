"""A rule run reads the wall clock once for its first synchronous stretch (`core.clock`):
its trace's start and end, its commands' `issued_at` and the outcomes submit decides at
once share that reading; after the run first waits, and for outcomes decided later
(queued, sent), the time is read afresh.

The rules here hold the loop a few milliseconds between their steps (on the real clock),
so a reading taken afresh where the stretch's reading belongs shows as a later time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from roost.commands.dispatch import Dispatcher
from roost.commands.guards import Limits
from roost.core.bus import Bus
from roost.core.commands import Command, SetHeat
from roost.core.events import CommandOutcome, Event, Outcome, TemperatureChanged
from roost.core.model import Change, Home, Structure, Thermostat, ThermostatMode
from roost.engine.engine import Engine
from roost.engine.rule_home import Found, RuleHome, Services
from roost.engine.traces import Trace
from roost.notify.notifier import Notification
from roost.rules.author import Rule, RuleBody, when
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.testing import simulate
from tests.command_stack import LIVING, command_stack

pytestmark = pytest.mark.anyio

HELD_S = 0.003  # how long the rules below hold the loop between two steps
AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEN = Thermostat(
    id="t1", name="Den", structure_id="s1", mode=ThermostatMode.HEAT, heat_setpoint_c=20.0
)


def hold_the_loop() -> None:
    """Spend HELD_S on the real clock without a wait (the wall clock moves meanwhile)."""
    until = time.perf_counter() + HELD_S
    while time.perf_counter() < until:
        pass


@dataclass
class Pipeline:
    engine: Engine
    state: HomeState
    commands: list[Command] = field(default_factory=list)
    outcomes: list[CommandOutcome] = field(default_factory=list)

    def trace(self, rule: str) -> Trace:
        (trace,) = self.engine.traces.latest(rule)
        return trace


@asynccontextmanager
async def pipeline(body: RuleBody) -> AsyncIterator[Pipeline]:
    """State, bus, engine and a dry-run dispatcher on the system clock, with one rule."""
    bus = Bus()
    echoes = EchoTracker()
    state = HomeState(bus, echoes)
    dispatcher = Dispatcher(state, bus, echoes, Limits(), dry_run=True)

    async def submit(
        command: Command, now: datetime | None = None, found: Found | None = None
    ) -> CommandOutcome:
        seen.commands.append(command)
        outcome = await dispatcher.submit(command, now, found)
        seen.outcomes.append(outcome)
        return outcome

    async def notify(_: Notification) -> None:
        return None

    engine = Engine(Services(state, submit, notify, lambda: AT))
    engine.load([Rule(name="warm", triggers=(when("temperature"),), body=body)])
    seen = Pipeline(engine, state)
    await state.snapshot(
        "acct", Home("acct", {"s1": Structure(id="s1", name="S")}, {"t1": DEN}), AT
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run, bus.subscribe("engine", interest=engine.interest))
        await anyio.sleep(0.01)
        yield seen
        tg.cancel_scope.cancel()


async def fire(p: Pipeline) -> None:
    """A temperature change, and wait until the rule's run is over."""
    await p.state.patch("acct", [Change("t1", "ambient_c", 18.0)], AT)
    with anyio.fail_after(5):
        while not any(t.finished_at for t in p.engine.traces.latest("warm")):
            await anyio.sleep(0.005)


async def test_a_run_that_never_waits_is_stamped_once() -> None:
    async def body(event: Event, home: RuleHome) -> None:
        hold_the_loop()
        await home.command("t1", SetHeat(21.0))
        hold_the_loop()
        await home.command("t1", SetHeat(22.0))
        hold_the_loop()

    async with pipeline(body) as p:
        await fire(p)
        trace = p.trace("warm")
        assert trace.finished_at == trace.at
        assert [c.issued_at for c in p.commands] == [trace.at, trace.at]
        assert [(o.outcome, o.at) for o in p.outcomes] == [(Outcome.DRY_RUN, trace.at)] * 2


async def test_a_run_that_waits_reads_the_clock_afresh_after_its_wait() -> None:
    async def body(event: Event, home: RuleHome) -> None:
        await home.command("t1", SetHeat(21.0))
        await anyio.sleep(HELD_S)
        await home.command("t1", SetHeat(22.0))
        hold_the_loop()

    async with pipeline(body) as p:
        await fire(p)
        trace = p.trace("warm")
        first, second = p.commands
        assert first.issued_at == trace.at
        assert second.issued_at >= trace.at + timedelta(seconds=HELD_S)
        assert trace.finished_at is not None
        assert trace.finished_at >= second.issued_at + timedelta(seconds=HELD_S)


async def test_a_delay_on_the_virtual_clock_moves_the_end_of_the_trace() -> None:
    async def body(event: TemperatureChanged, home: RuleHome) -> None:
        await home.command("den", SetHeat(21.0))
        await home.delay("5m")
        await home.command("den", SetHeat(22.0))

    rule = Rule(name="later", triggers=(when("temperature"),), body=body)
    home = {"structure": "House", "thermostats": {"Den": {"mode": "heat"}}}
    async with simulate([rule], home) as sim:
        await sim.temperature("Den", 18.0)
        await sim.advance("5m")
        (trace,) = sim.traces("later")
        assert trace.finished_at == trace.at + timedelta(minutes=5)
        assert [c.at for c in sim.commands] == [trace.at, trace.at + timedelta(minutes=5)]


HELD_RULE = f"""
import time
from roost import rule, when

@rule(on=when("presence", to="away"))
async def held(event, home):
    until = time.perf_counter() + {HELD_S}
    while time.perf_counter() < until:
        pass
    await home.thermostats(name="Living Room")[0].set_heat(21)
"""


async def test_queued_and_sent_outcomes_read_the_clock_when_they_happen(tmp_path: Path) -> None:
    async with command_stack(tmp_path, rules={"held.py": HELD_RULE}) as stack:
        await stack.away()
        kinds = (Outcome.QUEUED, Outcome.SENT)
        await stack.until(lambda: {o.outcome for o in stack.outcomes()} >= set(kinds))
        (trace,) = stack.runtime.engine.traces.latest("held")
        assert trace.finished_at == trace.at  # it never waited
        for outcome in stack.outcomes():
            assert outcome.target == LIVING
            if outcome.outcome in kinds:
                assert outcome.at >= trace.at + timedelta(seconds=HELD_S)
