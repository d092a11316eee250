"""The state diff: snapshots and patches in, typed events out."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from roost.core.bus import Bus
from roost.core.commands import Command, SetEco, SetHeat
from roost.core.events import (
    AttributeChanged,
    CoAlarm,
    CommandOutcome,
    ConnectionState,
    DeviceAdded,
    DeviceRemoved,
    Event,
    Outcome,
    PresenceChanged,
    SetpointChanged,
    TemperatureChanged,
    ThermostatModeChanged,
)
from roost.core.model import (
    AlarmState,
    Change,
    Home,
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUSE = Structure(id="s1", name="House")
DEN = Thermostat(
    id="t1",
    name="Den",
    structure_id="s1",
    mode=ThermostatMode.HEAT,
    heat_setpoint_c=20.0,
    ambient_c=19.0,
)
HALL = SmokeCoAlarm(id="a1", name="Hall", structure_id="s1")


def home(*entities: Structure | Thermostat | SmokeCoAlarm) -> Home:
    structures = {e.id: e for e in entities if isinstance(e, Structure)}
    devices = {e.id: e for e in entities if not isinstance(e, Structure)}
    return Home("acct", structures, devices)


class Harness:
    def __init__(self) -> None:
        self.bus = Bus()
        self.echoes = EchoTracker()
        self.state = HomeState(self.bus, self.echoes)
        self.inbox = self.bus.subscribe("test")

    def drain(self) -> list[Event]:
        events: list[Event] = []
        while True:
            try:
                events.extend(self.inbox.receive_nowait())
            except anyio.WouldBlock:
                return events


async def test_first_snapshot_is_the_baseline_and_emits_nothing() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN, HALL), AT)
    assert h.drain() == []
    assert h.state.device("t1") == DEN


async def test_a_changed_snapshot_emits_generic_and_semantic_events() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN, HALL), AT)
    away = replace(HOUSE, presence=Presence.AWAY)
    co = replace(HALL, co=AlarmState.EMERGENCY)
    await h.state.snapshot("acct", home(away, DEN, co), AT)
    events = h.drain()
    kinds = {type(e) for e in events}
    assert {PresenceChanged, CoAlarm, AttributeChanged} <= kinds
    presence = next(e for e in events if isinstance(e, PresenceChanged))
    assert (presence.old, presence.new, presence.structure, presence.device) == (
        Presence.HOME,
        Presence.AWAY,
        "s1",
        None,
    )
    alarm = next(e for e in events if isinstance(e, CoAlarm))
    assert (alarm.old, alarm.new, alarm.device, alarm.account) == ("ok", "emergency", "a1", "acct")
    generic = [e for e in events if isinstance(e, AttributeChanged)]
    assert sorted(e.attribute for e in generic) == ["co", "presence"]
    assert not any(e.context.catch_up for e in events)


async def test_a_patch_changes_only_what_it_names() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.patch(
        "acct", [Change("t1", "ambient_c", 21.5), Change("t1", "heat_setpoint_c", 22.0)], AT
    )
    events = h.drain()
    temperature = next(e for e in events if isinstance(e, TemperatureChanged))
    assert (temperature.old, temperature.new) == (19.0, 21.5)
    setpoint = next(e for e in events if isinstance(e, SetpointChanged))
    assert (setpoint.attribute, setpoint.new) == ("heat_setpoint_c", 22.0)
    device = h.state.device("t1")
    assert isinstance(device, Thermostat)
    assert (device.ambient_c, device.heat_setpoint_c, device.mode) == (21.5, 22.0, "heat")


async def test_a_patch_with_the_same_value_emits_nothing() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.patch("acct", [Change("t1", "ambient_c", 19.0)], AT)
    assert h.drain() == []


async def test_devices_added_and_removed() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.snapshot("acct", home(HOUSE, HALL), AT)
    events = h.drain()
    assert [(type(e), e.device) for e in events] == [(DeviceAdded, "a1"), (DeviceRemoved, "t1")]


async def test_the_snapshot_after_a_disconnect_is_catch_up() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.status("acct", ConnectionState.CONNECTED)
    await h.state.status("acct", ConnectionState.DISCONNECTED, "stream ended")
    await h.state.snapshot("acct", home(replace(HOUSE, presence=Presence.AWAY), DEN), AT)
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    changes = [e for e in h.drain() if isinstance(e, PresenceChanged)]
    assert [(e.new, e.context.catch_up) for e in changes] == [("away", True), ("home", False)]


async def test_an_echo_carries_the_causation_and_confirms_the_command() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    command = Command(
        id="c1",
        account="acct",
        target="t1",
        action=SetEco(True),
        issued_at=AT,
        deadline=AT + timedelta(minutes=5),
        rule="eco rule",
        correlation="e0",
    )
    h.echoes.expect(command)
    eco = replace(DEN, mode=ThermostatMode.ECO, heat_setpoint_c=12.5)
    await h.state.snapshot("acct", home(HOUSE, eco), AT)
    events = h.drain()
    mode = next(e for e in events if isinstance(e, ThermostatModeChanged))
    assert (mode.context.causation, mode.context.rule, mode.context.correlation) == (
        "c1",
        "eco rule",
        "e0",
    )
    assert mode.context.depth == 1
    confirmed = [e for e in events if isinstance(e, CommandOutcome)]
    assert [(c.command, c.outcome) for c in confirmed] == [("c1", Outcome.CONFIRMED)]
    assert confirmed[0].latency_s is not None


async def test_an_unrelated_change_is_not_taken_for_an_echo() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    command = Command(
        id="c1",
        account="acct",
        target="t1",
        action=SetHeat(23.0),
        issued_at=AT,
        deadline=AT + timedelta(minutes=5),
    )
    h.echoes.expect(command)
    await h.state.patch("acct", [Change("t1", "heat_setpoint_c", 21.0)], AT)
    events = h.drain()
    assert all(e.context.causation is None for e in events)
    assert not any(isinstance(e, CommandOutcome) for e in events)
    assert h.echoes.is_pending(command)


# ---- the per-structure alarm index the alarm guard reads ----------------------------------


async def _heat_outcome(state: HomeState, bus: Bus, echoes: EchoTracker) -> CommandOutcome:
    from roost.commands.dispatch import Dispatcher
    from roost.commands.guards import Limits

    dispatcher = Dispatcher(state, bus, echoes, Limits(), dry_run=True)
    command = Command(
        id="c-heat",
        account="acct",
        target="t1",
        action=SetHeat(23.0),  # above the 20 °C held: may start the heating
        issued_at=AT,
        deadline=AT + timedelta(minutes=5),
    )
    return await dispatcher.submit(command)


async def test_the_alarm_guard_sees_alarms_that_patches_snapshots_and_moves_bring() -> None:
    bus, echoes = Bus(), EchoTracker()
    bus.subscribe("sink", buffer=100)
    state = HomeState(bus, echoes)
    other = Structure(id="s2", name="Cabin")
    await state.snapshot("acct", home(HOUSE, other, DEN), AT)
    assert (await _heat_outcome(state, bus, echoes)).outcome is Outcome.DRY_RUN

    # an alarm arrives in the house by a snapshot, already sounding
    sounding = replace(HALL, smoke=AlarmState.EMERGENCY)
    await state.snapshot("acct", home(HOUSE, other, DEN, sounding), AT)
    refused = await _heat_outcome(state, bus, echoes)
    assert (refused.outcome, refused.guard) == (Outcome.REFUSED, "alarm")

    # it goes quiet by a patch, then sounds again by a patch
    await state.patch("acct", [Change("a1", "smoke", AlarmState.OK)], AT)
    assert (await _heat_outcome(state, bus, echoes)).outcome is Outcome.DRY_RUN
    await state.patch("acct", [Change("a1", "co", AlarmState.WARNING)], AT)
    assert (await _heat_outcome(state, bus, echoes)).guard == "alarm"

    # moved to the other structure, it no longer holds the house back
    moved = replace(HALL, structure_id="s2", co=AlarmState.WARNING)
    await state.snapshot("acct", home(HOUSE, other, DEN, moved), AT)
    assert (await _heat_outcome(state, bus, echoes)).outcome is Outcome.DRY_RUN
    assert [d.id for d in state.alarms_in("acct", "s2")] == ["a1"]
    assert state.alarms_in("acct", "s1") == []
