"""roost: a rules daemon for smart homes that live in vendor clouds.

What a rule file needs is importable from here, typed (`py.typed`): the decorators and
triggers, the conditions, the `Home` protocol a rule body gets, the device handles and
the event classes.
"""

__version__ = "0.1.0"

from roost import leanimports  # noqa: F401  (first: before anything imports httpx)
from roost.api import UnknownDevice
from roost.conditions import (
    all_of,
    any_of,
    device_state,
    not_,
    presence,
    structure_state,
    time_between,
    weekday,
)
from roost.events import (
    AccountStatus,
    AttributeChanged,
    Chime,
    CoAlarm,
    CommandOutcome,
    ConnectivityChanged,
    DeviceAdded,
    DeviceRemoved,
    Event,
    HvacChanged,
    Motion,
    NotificationOutcome,
    Person,
    PresenceChanged,
    Scheduled,
    SetpointChanged,
    SmokeAlarm,
    Sound,
    Started,
    TemperatureChanged,
    ThermostatModeChanged,
)
from roost.model import AlarmState, HvacActivity, Presence, Structure, ThermostatMode
from roost.notify import Priority
from roost.rules import cron, every, rule, startup, when
from roost.sun import sun, sun_between
from roost.surface import Alarm, Camera, Device, Doorbell, Home, Thermostat

__all__ = [
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
