"""The engine through the public rule API: filters, cooldown, echoes, isolation."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from roost.commands.dispatch import Dispatcher
from roost.commands.guards import Limits
from roost.core.bus import Bus
from roost.core.events import CommandOutcome, Context, Event, Outcome
from roost.core.model import AlarmState, Change, Home, Presence, SmokeCoAlarm, Structure, Thermostat
from roost.engine.engine import Engine
from roost.engine.loader import load_directory
from roost.engine.rule_home import Services
from roost.notify.notifier import Notification
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUSE = Structure(id="s1", name="House")
DEN = Thermostat(id="t1", name="Den", structure_id="s1", room="Den", heat_setpoint_c=20.0)
HALL = SmokeCoAlarm(id="a1", name="Hall", structure_id="s1", room="Hallway")


@dataclass
class World:
    bus: Bus
    state: HomeState
    engine: Engine
    notes: list[Notification]
    outcomes: list[CommandOutcome]

    async def change(self, *changes: Change) -> None:
        await self.state.patch("acct", list(changes), AT)
        await self.settle()

    async def settle(self) -> None:
        await anyio.sleep(0.05)


@asynccontextmanager
async def world(
    tmp_path: Path, files: dict[str, str], timeout_s: float = 5.0
) -> AsyncIterator[World]:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    loaded = load_directory(tmp_path)
    assert loaded.errors == []
    bus = Bus()
    echoes = EchoTracker()
    state = HomeState(bus, echoes)
    dispatcher = Dispatcher(state, bus, echoes, Limits(), dry_run=True)
    notes: list[Notification] = []

    async def notify(note: Notification) -> None:
        notes.append(note)

    engine = Engine(Services(state, dispatcher.submit, notify, lambda: AT), timeout_s=timeout_s)
    engine.load(loaded.rules)
    engine_inbox, watch = bus.subscribe("engine"), bus.subscribe("watch")
    outcomes: list[CommandOutcome] = []

    async def collect() -> None:
        async for batch in watch:
            outcomes.extend(e for e in batch if isinstance(e, CommandOutcome))

    await state.snapshot("acct", Home("acct", {"s1": HOUSE}, {"t1": DEN, "a1": HALL}), AT)
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run, engine_inbox)
        tg.start_soon(collect)
        yield World(bus, state, engine, notes, outcomes)
        tg.cancel_scope.cancel()


async def test_to_filter_with_one_of(tmp_path: Path) -> None:
    toml = """
    [[rule]]
    name = "alarm"
    on = { event = "co", to = ["warning", "emergency"] }
    do = [{ action = "notify", title = "CO {event.new} in the {device.room}" }]
    """
    async with world(tmp_path, {"r.toml": toml}) as w:
        await w.change(Change("a1", "co", AlarmState.WARNING))
        await w.change(Change("a1", "co", AlarmState.OK))
        await w.change(Change("a1", "co", AlarmState.EMERGENCY))
        assert [n.title for n in w.notes] == [
            "CO warning in the Hallway",
            "CO emergency in the Hallway",
        ]


async def test_from_filter_and_device_by_name(tmp_path: Path) -> None:
    py = """
    from roost import rule, when

    @rule(on=when("temperature", device="Den", from_=None))
    async def first_reading(event, home):
        await home.notify("first")

    @rule(on=when("temperature", device="t1"))
    async def any_reading(event, home):
        await home.notify(f"now {event.new}")

    @rule(on=when("temperature", device="Elsewhere"))
    async def other_device(event, home):
        await home.notify("wrong device")
    """
    async with world(tmp_path, {"r.py": py}) as w:
        await w.change(Change("t1", "ambient_c", 19.0))
        await w.change(Change("t1", "ambient_c", 19.5))
        assert sorted(n.title for n in w.notes) == ["first", "now 19.0", "now 19.5"]


async def test_device_by_id_or_name_as_devices_come_and_names_change(tmp_path: Path) -> None:
    """The index narrows the keys it reads as names as devices become known: a key that
    is a later device's id matches it by id, and a name matches whichever device has it."""
    py = """
    from roost import rule, when

    @rule(on=when("temperature", device="Den"))
    async def den(event, home):
        await home.notify(f"den {event.device} {event.new}")

    @rule(on=when("temperature", device="t2"))
    async def second(event, home):
        await home.notify(f"t2 {event.new}")

    @rule(on=when("temperature", device="Study"))
    async def study(event, home):
        await home.notify(f"study {event.device} {event.new}")
    """
    async with world(tmp_path, {"r.py": py}) as w:
        await w.change(Change("t1", "ambient_c", 19.0))
        study = replace(DEN, id="t2", name="Study")
        devices = {"t1": DEN, "a1": HALL, "t2": study}
        await w.state.snapshot("acct", Home("acct", {"s1": HOUSE}, devices), AT)
        await w.change(Change("t2", "ambient_c", 17.0))
        await w.change(Change("t1", "name", "Study"), Change("t2", "name", "Den"))
        await w.change(Change("t1", "ambient_c", 19.5), Change("t2", "ambient_c", 17.5))
        assert sorted(n.title for n in w.notes) == [
            "den t1 19.0",
            "den t2 17.5",
            "study t1 19.5",
            "study t2 17.0",
            "t2 17.0",
            "t2 17.5",
        ]


async def test_cooldown_suppresses_repeats(tmp_path: Path) -> None:
    py = """
    from roost import rule, when

    @rule(on=when("temperature"), cooldown="1h")
    async def once_an_hour(event, home):
        await home.notify(f"temperature {event.new}")
    """
    async with world(tmp_path, {"r.py": py}) as w:
        for value in (19.0, 20.0, 21.0):
            await w.change(Change("t1", "ambient_c", value))
        assert [n.title for n in w.notes] == ["temperature 19.0"]
        assert w.engine.stats["once_an_hour"].skipped_cooldown == 2


async def test_toml_condition_on_device_state(tmp_path: Path) -> None:
    toml = """
    [[rule]]
    name = "warm when cold"
    on = { event = "presence", to = "home" }
    condition = { device = "Den", attribute = "ambient_c", below = 18 }
    do = [{ action = "thermostat.set_heat", target = { name = "Den" }, celsius = 21 }]
    """
    async with world(tmp_path, {"r.toml": toml}) as w:
        await w.change(Change("t1", "ambient_c", 20.0))
        await w.change(Change("s1", "presence", Presence.AWAY))
        await w.change(Change("s1", "presence", Presence.HOME))
        assert w.outcomes == []
        assert w.engine.stats["warm when cold"].skipped_condition == 1
        await w.change(Change("t1", "ambient_c", 16.0), Change("s1", "presence", Presence.AWAY))
        await w.change(Change("s1", "presence", Presence.HOME))
        assert [(o.action, o.outcome) for o in w.outcomes] == [("heat to 21 °C", Outcome.DRY_RUN)]


async def test_a_failing_or_hanging_rule_does_not_stop_the_others(tmp_path: Path) -> None:
    py = """
    import anyio
    from roost import rule, when

    @rule(on=when("co"))
    async def raises(event, home):
        raise RuntimeError("bug in a rule")

    @rule(on=when("co"), timeout="0.1s")
    async def hangs(event, home):
        await anyio.sleep(3600)

    @rule(on=when("co"))
    async def works(event, home):
        await home.notify("still here")
    """
    async with world(tmp_path, {"r.py": py}) as w:
        await w.change(Change("a1", "co", AlarmState.WARNING))
        await anyio.sleep(0.2)
        await w.change(Change("a1", "co", AlarmState.OK))
        assert [n.title for n in w.notes] == ["still here", "still here"]
        assert w.engine.stats["raises"].errors == 2
        assert w.engine.stats["hangs"].timeouts >= 1


async def test_a_body_that_raises_timeout_before_it_waits_is_traced_as_timed_out(
    tmp_path: Path,
) -> None:
    """A TimeoutError of the rule's own, raised in its first stretch (before it ever
    waited, so before it had a cancel scope), is that run's timeout; the engine goes on."""
    py = """
    from roost import rule, when

    @rule(on=when("temperature"))
    async def gives_up(event, home):
        raise TimeoutError("the rule's own")

    @rule(on=when("temperature"))
    async def works(event, home):
        await home.notify("still here")
    """
    async with world(tmp_path, {"r.py": py}) as w:
        await w.change(Change("t1", "ambient_c", 19.0))
        await w.change(Change("t1", "ambient_c", 18.0))
        assert [n.title for n in w.notes] == ["still here", "still here"]
        assert w.engine.stats["gives_up"].timeouts == 2
        traces = w.engine.traces.latest("gives_up")
        assert [t.result for t in traces] == ["timed_out", "timed_out"]


async def test_a_rule_is_not_retriggered_by_its_own_echo(tmp_path: Path) -> None:
    py = """
    from roost import rule, when

    @rule(on=when("setpoint"))
    async def chase(event, home):
        await home.notify(f"saw {event.new}")
    """
    async with world(tmp_path, {"r.py": py}) as w:
        own = Context(causation="c1", rule="chase", depth=1)
        other = Context(causation="c2", rule="someone else", depth=1)
        for context, value in ((own, 21.0), (other, 22.0), (Context(), 23.0)):
            await w.bus.publish([_setpoint_event(value, context)])
        await w.settle()
        assert sorted(n.title for n in w.notes) == ["saw 22.0", "saw 23.0"]
        assert w.engine.stats["chase"].skipped_echo == 1


def _setpoint_event(value: float, context: Context) -> Event:
    from roost.core.events import SetpointChanged
    from roost.core.ids import new_id

    return SetpointChanged(
        id=new_id(),
        at=AT,
        account="acct",
        structure="s1",
        device="t1",
        context=context,
        old=20.0,
        new=value,
        attribute="heat_setpoint_c",
    )


async def test_python_and_toml_actions_address_devices(tmp_path: Path) -> None:
    py = """
    from roost import rule, when

    @rule(on=when("presence", to="away"))
    async def eco_everywhere(event, home):
        for thermostat in home.thermostats(structure=event.structure):
            await thermostat.set_eco(True)
    """
    toml = """
    [[rule]]
    name = "den by room"
    on = { event = "presence", to = "away" }
    do = [{ action = "thermostat.set_fan_timer", target = { room = "Den" }, minutes = 15 }]
    """
    async with world(tmp_path, {"r.py": py, "r.toml": toml}) as w:
        w.state.account("acct").devices["t1"] = replace(DEN, has_fan=True)
        await w.change(Change("s1", "presence", Presence.AWAY))
        assert sorted((o.rule, o.action, o.device) for o in w.outcomes) == [
            ("den by room", "fan for 15 min", "t1"),
            ("eco_everywhere", "eco on", "t1"),
        ]
