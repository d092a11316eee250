"""What a rule reads through `home` (`device()`, `find_device`, `thermostats(name=...)`):
the device as it was when the rule asked, never changing under it, and no way to change
the home's state through it."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from roost.core import model
from roost.core.bus import Bus
from roost.core.events import CommandOutcome, TemperatureChanged
from roost.core.model import Change, Home, Structure
from roost.engine.rule_home import RuleHome, Services
from roost.notify.notifier import Notification
from roost.rules import surface
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DEN = model.Thermostat(id="t1", name="Den", structure_id="s1", ambient_c=19.0)
HALL = model.SmokeCoAlarm(id="a1", name="Hall", structure_id="s1")
DOOR = model.Doorbell(id="d1", name="Door", structure_id="s1")
YARD = model.Camera(id="c1", name="Yard", structure_id="s1")


async def _home() -> RuleHome:
    state = HomeState(Bus(), EchoTracker())
    devices = {d.id: d for d in (DEN, HALL, DOOR, YARD)}
    await state.snapshot("acct", Home("acct", {"s1": Structure(id="s1", name="H")}, devices), AT)

    async def submit(_: object) -> CommandOutcome:
        raise AssertionError("no command expected")

    async def notify(_: Notification) -> None:
        raise AssertionError("no notification expected")

    services = Services(state, submit, notify, lambda: AT)
    event = TemperatureChanged(id="e", at=AT, account="acct", device="t1", old=18.0, new=19.0)
    return RuleHome(services, "r", event, dry_run=True)


def _reads(home: RuleHome) -> list[surface.Device]:
    found = home.find_device("t1")
    assert found is not None
    return [home.device(), home.device("Den"), found, *home.thermostats(name="den")]


async def test_a_device_read_does_not_change_under_the_rule() -> None:
    home = await _home()
    before = _reads(home)
    await home._services.state.patch("acct", [Change("t1", "ambient_c", 21.0)], AT)
    await home._services.state.patch("acct", [Change("t1", "name", "Study")], AT)
    assert [(t.ambient_c, t.name, t.state) for t in before] == [(19.0, "Den", DEN)] * 4
    after = [home.device(), home.find_device("Study"), *home.thermostats(name="study")]
    assert [(t.ambient_c, t.name) for t in after if t is not None] == [(21.0, "Study")] * 3


async def test_a_rule_cannot_change_the_state_through_what_it_reads() -> None:
    home = await _home()
    state = home._services.state
    for read in _reads(home):
        with pytest.raises(AttributeError):
            read.ambient_c = 30.0  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            read.state.ambient_c = 30.0  # type: ignore[misc]
        read.state = dataclasses.replace(DEN, ambient_c=30.0)  # the handle's own business
    device = state.device("t1")
    assert device == DEN
    assert [t.ambient_c for t in _reads(home)] == [19.0] * 4


async def test_each_device_gets_the_handle_of_its_kind() -> None:
    home = await _home()
    kinds = {ref: type(home.device(ref)) for ref in ("t1", "a1", "d1", "c1")}
    assert kinds == {
        "t1": surface.Thermostat,
        "a1": surface.Alarm,
        "d1": surface.Doorbell,
        "c1": surface.Camera,
    }
    assert [type(t) for t in home.thermostats(name="Den")] == [surface.Thermostat]
    assert home.device("a1").state is home._services.state.device("a1")
    assert repr(home.device("Door")) == "<Doorbell 'Door'>"


async def test_every_attribute_of_a_device_reads_through_its_handle() -> None:
    home = await _home()
    for ref in ("t1", "a1", "d1", "c1"):
        read = home.device(ref)
        names = ["kind", *(f.name for f in dataclasses.fields(read.state))]
        assert [getattr(read, n) for n in names] == [getattr(read.state, n) for n in names]
        for missing in ("nope", "_secret", "__dataclass_fields__"):
            with pytest.raises(AttributeError):
                getattr(read, missing)
    assert surface.Device(home, DEN).mode == DEN.mode  # any handle reads any device's
    with pytest.raises(AttributeError):
        home.device("a1").mode  # noqa: B018 (an alarm has none)
