"""The state diff: snapshots and patches in, typed events out."""

from __future__ import annotations

from collections.abc import Callable
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
    Device,
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


async def test_an_id_found_missing_is_found_once_a_snapshot_or_restore_brings_it() -> None:
    """A miss is remembered (a name asked as an id scans no accounts twice), and forgotten
    when devices come: a new device, a new account's baseline or a restored home."""
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    for _ in range(2):
        assert h.state.find("a1") is None
        assert h.state.device("a1") is None
    await h.state.snapshot("acct", home(HOUSE, DEN, HALL), AT)
    assert h.state.device("a1") == HALL
    assert h.state.find("t9") is None
    other = Thermostat(id="t9", name="Attic", structure_id="s9")
    await h.state.snapshot("acct2", Home("acct2", {}, {"t9": other}), AT)
    assert h.state.find("t9") == ("acct2", other)
    assert h.state.device("t8") is None
    h.state.restore(Home("acct3", {}, {"t8": replace(other, id="t8")}), {})
    assert h.state.device("t8") == replace(other, id="t8")


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


# ---- readings kept beside the held device until it is read (no copy per reading) ------

READERS: dict[str, Callable[[HomeState], Device | Structure | None]] = {
    "device": lambda s: s.device("t1"),
    "find": lambda s: found[1] if (found := s.find("t1")) else None,
    "devices": lambda s: next(d for d in s.devices() if d.id == "t1"),
    "home": lambda s: s.home("acct").devices["t1"],
    "devices_in": lambda s: next(d for d in s.devices_in("acct", "s1") if d.id == "t1"),
    "account devices": lambda s: s.accounts["acct"].devices["t1"],
    "account entity": lambda s: s.account("acct").entity("t1"),
}


@pytest.mark.parametrize("reader", READERS)
async def test_every_way_of_reading_a_device_sees_its_patched_readings(reader: str) -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN, HALL), AT)
    await h.state.patch("acct", [Change("t1", "ambient_c", 20.5)], AT)
    await h.state.patch("acct", [Change("t1", "humidity", 41.0), Change("t1", "name", "Study")], AT)
    device = READERS[reader](h.state)
    assert device == replace(DEN, ambient_c=20.5, humidity=41.0, name="Study")
    assert h.state.device("t1") is h.state.device("t1")  # folded once, then held


async def test_successive_readings_each_change_from_the_last() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    for value in (20.0, 21.0, 21.0, 19.0):
        await h.state.patch("acct", [Change("t1", "ambient_c", value)], AT)
    changes = [e for e in h.drain() if isinstance(e, TemperatureChanged)]
    assert [(e.old, e.new) for e in changes] == [(19.0, 20.0), (20.0, 21.0), (21.0, 19.0)]
    assert [e.id for e in changes] == [f"acct/t1.ambient_c/{n}/temperature" for n in (1, 2, 3)]


async def test_a_snapshot_diffs_against_the_patched_readings() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.patch("acct", [Change("t1", "ambient_c", 21.5)], AT)
    h.drain()
    await h.state.snapshot("acct", home(HOUSE, replace(DEN, ambient_c=21.5)), AT)
    assert h.drain() == []  # the snapshot says what the patch said: nothing new
    await h.state.snapshot("acct", home(HOUSE, replace(DEN, ambient_c=22.0)), AT)
    changes = [e for e in h.drain() if isinstance(e, TemperatureChanged)]
    assert [(e.old, e.new) for e in changes] == [(21.5, 22.0)]


async def test_a_restored_home_replaces_readings_not_yet_folded() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.patch("acct", [Change("t1", "ambient_c", 25.0)], AT)
    h.state.restore(home(HOUSE, DEN), {})
    assert h.state.device("t1") == DEN


async def test_the_engine_reads_a_name_without_folding_the_readings() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    assert h.state.device_name("t1") == "Den"
    await h.state.patch("acct", [Change("t1", "ambient_c", 25.0)], AT)
    assert h.state.device_name("t1") == "Den"
    assert h.state.accounts["acct"].unfolded == {"t1": {"ambient_c": 25.0}}
    await h.state.patch("acct", [Change("t1", "name", "Study")], AT)
    assert h.state.device_name("t1") == "Study"
    assert h.state.device_name("nope") is None


async def test_a_move_by_patch_is_copied_at_once_and_the_index_follows() -> None:
    h = Harness()
    other = Structure(id="s2", name="Cabin")
    await h.state.snapshot("acct", home(HOUSE, other, DEN), AT)
    await h.state.patch("acct", [Change("t1", "ambient_c", 20.0)], AT)
    assert [d.id for d in h.state.devices_in("acct", "s1")] == ["t1"]
    await h.state.patch("acct", [Change("t1", "structure_id", "s2")], AT)
    assert h.state.devices_in("acct", "s1") == []
    assert h.state.devices_in("acct", "s2") == [replace(DEN, structure_id="s2", ambient_c=20.0)]


async def test_a_patch_naming_an_unknown_attribute_changes_nothing() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.patch(
        "acct", [Change("t1", "ambient_c", 25.0), Change("t1", "no_such_field", 1)], AT
    )
    assert h.drain() == []
    assert h.state.device("t1") == DEN


async def test_a_single_change_of_a_structure_or_an_unknown_name_takes_the_full_path() -> None:
    h = Harness()
    await h.state.snapshot("acct", home(HOUSE, DEN), AT)
    await h.state.patch("acct", [Change("s1", "presence", Presence.AWAY)], AT)
    [generic, presence] = h.drain()
    assert isinstance(generic, AttributeChanged)
    assert isinstance(presence, PresenceChanged)
    assert h.state.home("acct").structures["s1"] == replace(HOUSE, presence=Presence.AWAY)
    await h.state.patch("acct", [Change("t1", "no_such_field", 1)], AT)
    await h.state.patch("acct", [Change("nowhere", "ambient_c", 1.0)], AT)
    assert h.drain() == []
    assert h.state.device("t1") == DEN
