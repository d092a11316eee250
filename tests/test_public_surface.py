"""The public surface is pinned: `roost` (what a rule file imports) and `roost.testing`.

Everything else is internal: the subpackages' modules may move or change without notice.
A name added to or dropped from either surface fails here until the lists below (and the
README) say so. In the style of httpx's `test_exported_members`.
"""

from __future__ import annotations
import __future__

import types

import pytest

import roost
import roost.testing

ROOST = [
    "AccountStatus",
    "Alarm",
    "AlarmState",
    "AttributeChanged",
    "Camera",
    "Chime",
    "CoAlarm",
    "CommandOutcome",
    "ConnectivityChanged",
    "Device",
    "DeviceAdded",
    "DeviceRemoved",
    "Doorbell",
    "Event",
    "Home",
    "HvacActivity",
    "HvacChanged",
    "Motion",
    "NotificationOutcome",
    "Person",
    "Presence",
    "PresenceChanged",
    "Priority",
    "Scheduled",
    "SetpointChanged",
    "SmokeAlarm",
    "Sound",
    "Started",
    "Structure",
    "TemperatureChanged",
    "Thermostat",
    "ThermostatMode",
    "ThermostatModeChanged",
    "UnknownDevice",
    "all_of",
    "any_of",
    "cron",
    "device_state",
    "every",
    "not_",
    "presence",
    "rule",
    "startup",
    "structure_state",
    "sun",
    "sun_between",
    "time_between",
    "weekday",
    "when",
]
TESTING = ["RunawayRule", "SentCommand", "SimulatedHome", "build_home", "simulate", "simulate_home"]


def exported(module: types.ModuleType) -> list[str]:
    """The public names a module holds, other than its submodules and `from __future__`."""
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    )


@pytest.mark.parametrize(
    ("module", "pinned"), [(roost, ROOST), (roost.testing, TESTING)], ids=["roost", "testing"]
)
def test_exported_members(module: types.ModuleType, pinned: list[str]) -> None:
    assert sorted(module.__all__) == pinned
    for name in module.__all__:
        getattr(module, name)  # each resolves (roost.testing loads its pytest fixture lazily)
    assert exported(module) == pinned  # nothing public that __all__ does not list


@pytest.mark.parametrize("module", [roost, roost.testing], ids=["roost", "testing"])
def test_every_exported_member_says_where_it_lives(module: types.ModuleType) -> None:
    """Each name is a real object from inside roost (or roost's pytest plugin), not a
    leftover re-export of a third-party name."""
    for name in module.__all__:
        owner = getattr(getattr(module, name), "__module__", "")
        assert owner.split(".")[0] in {"roost", "roost_pytest"}, (name, owner)
