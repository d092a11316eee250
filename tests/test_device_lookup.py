"""A rule's lookup of a device by name (`home.thermostats(name=...)`, `home.device(name)`):
the name as the rule spells it is remembered, and what it finds is always what the plain
case-insensitive lookup finds, across renames."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from roost.core.bus import Bus
from roost.core.events import CommandOutcome, TemperatureChanged
from roost.core.model import Change, Home, Structure, Thermostat
from roost.engine.rule_home import RuleHome, Services
from roost.notify.notifier import Notification
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState

pytestmark = pytest.mark.anyio

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUSE = Structure(id="s1", name="House")


async def _services(*devices: Thermostat) -> Services:
    state = HomeState(Bus(), EchoTracker())
    home = Home("acct", {"s1": HOUSE}, {d.id: d for d in devices})
    await state.snapshot("acct", home, AT)

    async def submit(_: object) -> CommandOutcome:
        raise AssertionError("no command expected")

    async def notify(_: Notification) -> None:
        raise AssertionError("no notification expected")

    return Services(state, submit, notify, lambda: AT)


def _thermostat(device_id: str, name: str) -> Thermostat:
    return Thermostat(id=device_id, name=name, structure_id="s1", room=name)


def _found(services: Services, ref: str) -> str | None:
    found = services.find_device(ref)
    return found.id if found is not None else None


async def test_a_name_asked_again_finds_the_same_device_and_follows_a_rename() -> None:
    services = await _services(_thermostat("t1", "Den"), _thermostat("t2", "Hall"))
    assert [_found(services, "Den") for _ in range(3)] == ["t1", "t1", "t1"]
    assert _found(services, "DEN") == "t1"  # case-insensitive, as before
    assert _found(services, "t2") == "t2"  # an id first

    await services.state.patch("acct", [Change("t1", "name", "Study")], AT)
    assert _found(services, "Den") is None  # the remembered spelling is checked, not trusted
    assert _found(services, "Study") == "t1"

    await services.state.patch("acct", [Change("t2", "name", "Den")], AT)
    assert _found(services, "Den") == "t2"  # the name moved to another device


async def test_a_rename_that_only_changes_case_still_finds_it() -> None:
    services = await _services(_thermostat("t1", "Den"))
    assert _found(services, "Den") == "t1"
    await services.state.patch("acct", [Change("t1", "name", "DEN")], AT)
    assert _found(services, "Den") == "t1"
    assert _found(services, "den") == "t1"


async def test_a_rule_body_gets_the_thermostat_by_name_on_every_run() -> None:
    services = await _services(_thermostat("t1", "Den"), _thermostat("t2", "Hall"))
    event = TemperatureChanged(id="e", at=AT, account="acct", device="t1", old=18.0, new=17.0)
    for _ in range(2):
        home = RuleHome(services, "r", event, dry_run=True)
        assert [t.id for t in home.thermostats(name="Hall")] == ["t2"]
        assert home.thermostats(name="Attic") == []
        assert home.device("hall").id == "t2"


async def test_an_id_that_comes_later_wins_over_a_remembered_name() -> None:
    services = await _services(_thermostat("t1", "Den"))
    assert [_found(services, "Den") for _ in range(2)] == ["t1", "t1"]
    added = Home(
        "acct",
        {"s1": HOUSE},
        {d.id: d for d in (_thermostat("t1", "Den"), _thermostat("Den", "Attic"))},
    )
    await services.state.snapshot("acct", added, AT)
    assert _found(services, "Den") == "Den"  # an id first, as before
    assert _found(services, "Attic") == "Den"
