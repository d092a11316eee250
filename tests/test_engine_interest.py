"""The engine's inbox leaves out command outcomes while no loaded rule watches them, and
nothing else: an alarm or a device's event always comes in, a rule watching outcomes (loaded
at start or by a reload) sees them, and every other reader of outcomes still gets them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from roost.commands.dispatch import Dispatcher
from roost.commands.guards import Limits
from roost.core.bus import Bus, Interest
from roost.core.events import (
    CoAlarm,
    CommandOutcome,
    Delivery,
    Event,
    NotificationOutcome,
    Outcome,
    PresenceChanged,
    SmokeAlarm,
    TemperatureChanged,
)
from roost.core.inbox import Inbox
from roost.core.model import AlarmState, Presence
from roost.engine.engine import Engine
from roost.engine.rule_home import Services
from roost.notify.notifier import Notification
from roost.rules.author import Rule, when
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from tests.command_stack import HOME, CommandStack, command_stack, write_rules

pytestmark = pytest.mark.anyio

AT = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)

HEAT_WHEN_PRESENCE = """
from roost import rule, when

@rule(on=when("presence"))
async def heat(event, home):
    await home.thermostats(name="Living Room")[0].set_heat(22)
"""

WATCH_OUTCOMES = """
from roost import rule, when

@rule(on=when("command"))
async def watch_outcomes(event, home):
    pass
"""


def outcome(n: int = 0) -> CommandOutcome:
    return CommandOutcome(
        id=f"o{n}", at=AT, account="acct", command=f"c{n}", action="heat", outcome=Outcome.DRY_RUN
    )


def others() -> list[Event]:
    """An event of each sort that is not a command outcome: alarms first."""
    where = {"at": AT, "account": "acct", "structure": "s1"}
    return [
        SmokeAlarm(id="e1", device="a1", old=AlarmState.OK, new=AlarmState.EMERGENCY, **where),
        CoAlarm(id="e2", device="a1", old=AlarmState.OK, new=AlarmState.WARNING, **where),
        TemperatureChanged(id="e3", device="t1", old=20.0, new=19.0, **where),
        PresenceChanged(id="e4", old=Presence.HOME, new=Presence.AWAY, **where),
        NotificationOutcome(id="e5", key="k", title="t", delivery=Delivery.DEAD, **where),
    ]


def engine() -> Engine:
    bus = Bus()
    echoes = EchoTracker()
    state = HomeState(bus, echoes)
    dispatcher = Dispatcher(state, bus, echoes, Limits(), dry_run=True)

    async def notify(note: Notification) -> None:
        return None

    return Engine(Services(state, dispatcher.submit, notify, lambda: AT))


def received(inbox: Inbox[Sequence[Event]]) -> list[str]:
    return [e.id for batch in inbox.take_all() for e in batch]


def watching(*kinds: str) -> list[Rule]:
    async def body(event: Event, home: object) -> None:
        return None

    return [Rule(name=f"on {kind}", triggers=(when(kind),), body=body) for kind in kinds]


# ---- the bus and the engine's declared interest -------------------------------------------


async def test_before_rules_are_loaded_the_engine_takes_everything() -> None:
    bus, unloaded = Bus(), engine()
    inbox = bus.subscribe("engine", interest=unloaded.interest)
    for event in (outcome(), *others()):
        await bus.publish([event])
    assert received(inbox) == ["o0", "e1", "e2", "e3", "e4", "e5"]


@pytest.mark.parametrize("kinds", [(), ("temperature",), ("command",), ("smoke", "command")])
async def test_an_alarm_or_any_event_not_roosts_own_is_never_left_out(
    kinds: tuple[str, ...],
) -> None:
    bus, loaded = Bus(), engine()
    loaded.load(watching(*kinds))
    inbox = bus.subscribe("engine", interest=loaded.interest)
    for event in others():
        await bus.publish([event])
    await bus.publish(others())
    assert received(inbox) == ["e1", "e2", "e3", "e4", "e5"] * 2


async def test_outcomes_come_in_exactly_while_a_loaded_rule_watches_them() -> None:
    bus, reloaded = Bus(), engine()
    inbox = bus.subscribe("engine", interest=reloaded.interest)
    reloaded.load(watching("temperature"))
    await bus.publish([outcome(1)])
    reloaded.load(watching("temperature", "command"))
    await bus.publish([outcome(2)])
    reloaded.load(watching("temperature"))
    await bus.publish([outcome(3)])
    assert received(inbox) == ["o2"]
    assert bus.stats()["engine"].ignored == 2


async def test_a_batch_with_anything_besides_outcomes_comes_in_whole() -> None:
    bus, loaded = Bus(), engine()
    loaded.load(watching("temperature"))
    inbox = bus.subscribe("engine", interest=loaded.interest)
    alarm = others()[0]
    await bus.publish([outcome(1), alarm, outcome(2)])
    await bus.publish([outcome(3), outcome(4)])
    assert received(inbox) == ["o1", "e1", "o2"]


async def test_an_interest_is_read_at_every_publish_and_leaves_other_subscribers_alone() -> None:
    bus, interest = Bus(), Interest()
    picky, everything = bus.subscribe("picky", interest=interest), bus.subscribe("all")
    tapped: list[str] = []
    bus.tap("tap", lambda batch: tapped.extend(e.id for e in batch))
    await bus.publish([outcome(1)])
    interest.ignored = frozenset({"command"})
    await bus.publish([outcome(2)])
    interest.ignored = frozenset()
    await bus.publish([outcome(3)])
    assert received(picky) == ["o1", "o3"]
    assert received(everything) == tapped == ["o1", "o2", "o3"]
    assert (bus.stats()["picky"].delivered, bus.stats()["picky"].ignored) == (2, 1)


# ---- the daemon: rules from files, a simulated cloud over loopback ---------------------------


async def fired(stack: CommandStack, rule: str) -> None:
    """Until `rule` has run (its runs are the engine's own count)."""
    with anyio.fail_after(10):
        while stack.runtime.engine.stats[rule].fired == 0:
            await anyio.sleep(0.02)


async def outcome_seen(stack: CommandStack) -> None:
    await stack.until(lambda: bool(stack.outcomes()))


async def test_a_rule_watching_outcomes_loaded_at_start_sees_them(tmp_path: Path) -> None:
    rules = {"heat.py": HEAT_WHEN_PRESENCE, "watch.py": WATCH_OUTCOMES}
    async with command_stack(tmp_path, rules=rules) as stack:
        await stack.away()
        await fired(stack, "watch_outcomes")
        assert stack.runtime.bus.stats()["engine"].ignored == 0


async def test_a_rule_watching_outcomes_added_by_a_reload_sees_them(tmp_path: Path) -> None:
    async with command_stack(tmp_path, rules={"heat.py": HEAT_WHEN_PRESENCE}) as stack:
        await stack.away()
        await outcome_seen(stack)
        engine = stack.runtime.bus.stats()["engine"]
        assert engine.ignored > 0  # no rule watched them: the engine was not sent them
        write_rules(tmp_path / "rules", {"watch.py": WATCH_OUTCOMES})
        await stack.runtime.reload_rules()
        ignored = engine.ignored
        stack.home.set_away(HOME, False)
        await fired(stack, "watch_outcomes")
        assert engine.ignored == ignored


async def test_outcomes_the_engine_leaves_out_still_reach_the_journal_and_the_other_readers(
    tmp_path: Path,
) -> None:
    async with command_stack(tmp_path, rules={"heat.py": HEAT_WHEN_PRESENCE}) as stack:
        await stack.away()
        await stack.until(lambda: any(o.outcome is Outcome.CONFIRMED for o in stack.outcomes()))
        published = {o.id for o in stack.outcomes()}
        assert stack.runtime.bus.stats()["engine"].ignored > 0
        store = stack.runtime.store
        with anyio.fail_after(10):
            while {e.body["id"] for e in await store.journal(event="command")} != published:
                await anyio.sleep(0.02)  # the journal writer runs on its own
