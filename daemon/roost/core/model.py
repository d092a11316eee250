"""The normalized home: one vocabulary for every vendor.

Providers translate their payloads into these frozen classes and back; nothing above
`providers/` ever sees a vendor's field names. Temperatures are always degrees Celsius.
`None` is "unknown": the cloud sent a value roost could not read (see providers/readers.py),
or none at all; a guard that needs an unknown value refuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from roost.core.fastinit import fast_init


class Presence(StrEnum):
    HOME = "home"
    AWAY = "away"


class ThermostatMode(StrEnum):
    HEAT = "heat"
    COOL = "cool"
    HEAT_COOL = "heat-cool"
    ECO = "eco"
    OFF = "off"


class HvacActivity(StrEnum):
    HEATING = "heating"
    COOLING = "cooling"
    IDLE = "idle"


class AlarmState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    EMERGENCY = "emergency"


class BatteryHealth(StrEnum):
    OK = "ok"
    REPLACE = "replace"


class DeviceKind(StrEnum):
    THERMOSTAT = "thermostat"
    SMOKE_CO_ALARM = "smoke_co_alarm"
    CAMERA = "camera"
    DOORBELL = "doorbell"


@dataclass(frozen=True, slots=True, kw_only=True)
class Structure:
    id: str
    name: str
    presence: Presence | None = Presence.HOME
    time_zone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Device:
    """Fields every device has. `room` is the vendor's room ("where") name."""

    kind: ClassVar[DeviceKind]
    id: str
    name: str
    structure_id: str
    room: str | None = None
    online: bool | None = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Thermostat(Device):
    """A thermostat. The setpoints are the *active* ones for the current mode.

    heat mode: heat_setpoint_c; cool mode: cool_setpoint_c; heat-cool: both;
    eco: the eco range; off: neither.
    """

    kind: ClassVar[DeviceKind] = DeviceKind.THERMOSTAT
    mode: ThermostatMode | None = ThermostatMode.OFF
    heat_setpoint_c: float | None = None
    cool_setpoint_c: float | None = None
    ambient_c: float | None = None
    humidity: float | None = None
    hvac: HvacActivity | None = HvacActivity.IDLE
    can_heat: bool | None = True
    can_cool: bool | None = False
    has_fan: bool | None = False
    fan_timer_active: bool | None = False
    fan_timer_until: datetime | None = None
    emergency_heat: bool | None = False
    allowed_range_c: tuple[float, float] = (9.0, 32.0)
    locked: bool | None = False
    locked_range_c: tuple[float, float] | None = None
    eco_range_c: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SmokeCoAlarm(Device):
    kind: ClassVar[DeviceKind] = DeviceKind.SMOKE_CO_ALARM
    smoke: AlarmState | None = AlarmState.OK
    co: AlarmState | None = AlarmState.OK
    battery: BatteryHealth | None = BatteryHealth.OK


@dataclass(frozen=True, slots=True, kw_only=True)
class Camera(Device):
    kind: ClassVar[DeviceKind] = DeviceKind.CAMERA
    streaming: bool | None = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Doorbell(Camera):
    kind: ClassVar[DeviceKind] = DeviceKind.DOORBELL


AnyDevice = Thermostat | SmokeCoAlarm | Camera | Doorbell

# A normalizer builds a device per changed device per payload: the cheaper `__init__`.
for _entity in (Structure, Device, Thermostat, SmokeCoAlarm, Camera, Doorbell):
    fast_init(_entity)

_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def attributes(obj: Structure | Device) -> tuple[str, ...]:
    """The attribute names of a structure or device class, cached (used on the hot path)."""
    cls = type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls))
        _FIELDS[cls] = names
    return names


_FIELD_SETS: dict[type[Any], frozenset[str]] = {}


def attribute_set(obj: Structure | Device) -> frozenset[str]:
    """The attribute names of a structure or device, as a set (cached)."""
    names = _FIELD_SETS.get(type(obj))
    if names is None:
        names = _FIELD_SETS[type(obj)] = frozenset(attributes(obj))
    return names


def attribute_names(cls: type[Structure] | type[Device]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, slots=True)
class Home:
    """Everything one account can see, as one immutable picture."""

    account: str
    structures: Mapping[str, Structure] = field(default_factory=dict)
    devices: Mapping[str, Device] = field(default_factory=dict)

    def thermostats(self) -> Iterator[Thermostat]:
        return (d for d in self.devices.values() if isinstance(d, Thermostat))


@dataclass(frozen=True, slots=True)
class Change:
    """One attribute of one structure or device took a new value (a provider's patch)."""

    target: str
    attribute: str
    value: Any


fast_init(Change)  # one per reading a stream patches, on the hot path
