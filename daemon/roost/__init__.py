"""roost: a rules daemon for smart homes that live in vendor clouds.

What a rule file needs is importable from here, typed (`py.typed`): the decorators and
triggers, the conditions, the `Home` protocol a rule body gets, the device handles and
the event classes.
"""

__version__ = "0.1.0"

from roost import leanimports  # noqa: F401  (first: before anything imports httpx)
from roost.core.events import (
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
from roost.core.model import AlarmState, HvacActivity, Presence, Structure, ThermostatMode
from roost.engine.rule_home import UnknownDevice
from roost.notify.notifier import Priority
from roost.rules.author import cron, every, rule, startup, when
from roost.rules.conditions import (
    all_of,
    any_of,
    device_state,
    not_,
    presence,
    structure_state,
    time_between,
    weekday,
)
from roost.rules.sun import sun, sun_between
from roost.rules.surface import Alarm, Camera, Device, Doorbell, Home, Thermostat

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
