"""Netatmo `homesdata` + `homestatus` → the normalized home.

The mapping (README "Netatmo" says the same for users):

- a Netatmo **home** is a `Structure`;
- a **room** with a thermostat or valves (NATherm1, NRV, OTM, BNS) is a `Thermostat` with the
  room's id: setpoint = `therm_setpoint_temperature`, ambient = `therm_measured_temperature`,
  mode from `therm_setpoint_mode` (schedule/home/manual/max → heat, away/hg → eco,
  off → off); it heats while a valve asks for power or the boiler runs;
- **presence** comes from the people Netatmo Security knows: away when every one of them is
  out of sight. A home without them (Energy only) is away while its heating is in away mode;
- a smoke alarm (NSD) or CO alarm (NCO) is a `SmokeCoAlarm`; its alarm states come from
  events (`getevents`, see `timeline`), which the caller passes in as `alarms`;
- a camera (NACamera, NOC, NPC) is a `Camera` (streaming = monitoring on), a doorbell (NDB)
  a `Doorbell`.

Module types roost does not model (weather stations, lights, shutters…) are left out.
All functions are pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from roost.core import errors
from roost.core.model import (
    AlarmState,
    BatteryHealth,
    Camera,
    Device,
    Doorbell,
    Home,
    HvacActivity,
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.providers.bounds import check_devices
from roost.providers.readers import Fields, Problems

THERMOSTAT_MODULES = frozenset({"NATherm1", "NRV", "OTM", "BNS"})
CAMERA_MODULES: Mapping[str, type[Camera]] = {
    "NACamera": Camera,
    "NOC": Camera,
    "NPC": Camera,
    "NDB": Doorbell,
}
SMOKE_ALARM, CO_ALARM = "NSD", "NCO"
ALARM_MODULES = frozenset({SMOKE_ALARM, CO_ALARM})
SECURITY_MODULES = frozenset(CAMERA_MODULES) | ALARM_MODULES
ALLOWED_RANGE_C = (7.0, 30.0)  # what NATherm1/NRV accept as a manual setpoint [M]

ROOM_MODES: Mapping[str, ThermostatMode] = {
    "schedule": ThermostatMode.HEAT,
    "home": ThermostatMode.HEAT,
    "manual": ThermostatMode.HEAT,
    "max": ThermostatMode.HEAT,
    "away": ThermostatMode.ECO,
    "hg": ThermostatMode.ECO,
    "off": ThermostatMode.OFF,
}
_BATTERY = {
    "max": BatteryHealth.OK,
    "full": BatteryHealth.OK,
    "high": BatteryHealth.OK,
    "medium": BatteryHealth.OK,
    "low": BatteryHealth.REPLACE,
    "very_low": BatteryHealth.REPLACE,
}
_MONITORING = {"on": True, "off": False}


class PayloadError(errors.PayloadError):
    """A Netatmo answer (or a part of it) that roost cannot use."""


@dataclass(frozen=True, slots=True)
class AlarmStates:
    """What a smoke or CO alarm last reported (from its events)."""

    smoke: AlarmState = AlarmState.OK
    co: AlarmState = AlarmState.OK


@dataclass(frozen=True, slots=True)
class HomeReading:
    """One home as last read: its `homesdata` entry, its `homestatus` and module errors."""

    data: Mapping[str, Any]
    status: Mapping[str, Any]
    errors: Mapping[str, int] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return _text(self.data, "id", "home")


def normalize(
    readings: Sequence[HomeReading],
    account: str,
    alarms: Mapping[str, AlarmStates],
    problems: Problems | None = None,
) -> Home:
    """The normalized picture of every home read; unreadable fields are unknown (None)
    and noted in `problems`."""
    found = problems if problems is not None else Problems()
    structures: dict[str, Structure] = {}
    devices: dict[str, Device] = {}
    for reading in readings:
        structure, home_devices = normalize_home(reading, alarms, found)
        structures[structure.id] = structure
        devices.update((device.id, device) for device in home_devices)
    check_devices(len(devices))
    return Home(account, structures, devices)


def normalize_home(
    reading: HomeReading, alarms: Mapping[str, AlarmStates], problems: Problems | None = None
) -> tuple[Structure, list[Device]]:
    found = problems if problems is not None else Problems()
    data, status = _mapping(reading.data, "home"), _mapping(reading.status, "homestatus home")
    home_id = reading.id
    home = found.fields(data, home_id)
    home_status = Fields(status, home_id, found, "homestatus.")
    rooms = _by_id(home, "rooms")
    room_status = _by_id(home_status, "rooms")
    module_status = _by_id(home_status, "modules")
    modules = _by_id(home, "modules")
    devices: list[Device] = []
    for room_id, room in rooms.items():
        types = [_module_type(modules.get(m)) for m in _ids(room, "module_ids")]
        if THERMOSTAT_MODULES.intersection(types):
            devices.append(
                _thermostat(
                    home_id, room, room_status.get(room_id), modules, module_status, reading, found
                )
            )
    for module_id, module in modules.items():
        device = _module(home_id, module_id, module, module_status, rooms, reading, alarms, found)
        if device is not None:
            devices.append(device)
    heated = [room_status[d.id] for d in devices if d.id in room_status]
    structure = Structure(
        id=home_id,
        name=_name(data, home_id),
        presence=presence(status, heated),
        time_zone=home.text("timezone"),
    )
    return structure, devices


def _module(
    home_id: str,
    module_id: str,
    module: Mapping[str, Any],
    module_status: Mapping[str, Mapping[str, Any]],
    rooms: Mapping[str, Mapping[str, Any]],
    reading: HomeReading,
    alarms: Mapping[str, AlarmStates],
    problems: Problems,
) -> Device | None:
    kind = _module_type(module)
    if kind not in CAMERA_MODULES and kind not in ALARM_MODULES:
        return None
    f = problems.fields(module_status.get(module_id, {}), module_id)
    reachable = f.flag("reachable", default=True)
    common: dict[str, Any] = {
        "id": module_id,
        "name": _name(module, module_id),
        "structure_id": home_id,
        "room": _room_name(rooms, module.get("room_id")),
        "online": None if reachable is None else reachable and module_id not in reading.errors,
    }
    if kind in CAMERA_MODULES:
        monitoring = f.enum("monitoring", _MONITORING, default="on")
        return CAMERA_MODULES[kind](**common, streaming=monitoring)
    states = alarms.get(module_id, AlarmStates())
    return SmokeCoAlarm(
        **common,
        smoke=states.smoke if kind == SMOKE_ALARM else AlarmState.OK,
        co=states.co if kind == CO_ALARM else AlarmState.OK,
        battery=f.enum("battery_state", _BATTERY, default="full"),
    )


def presence(status: Mapping[str, Any], heated_rooms: Sequence[Mapping[str, Any]]) -> Presence:
    """Away when every person Netatmo knows is out of sight; with no persons, when every
    heated room is in the home's away mode."""
    persons = [p for p in _objects(status, "persons") if "out_of_sight" in p]
    if persons:
        return Presence.AWAY if all(p["out_of_sight"] is True for p in persons) else Presence.HOME
    if heated_rooms and all(r.get("therm_setpoint_mode") == "away" for r in heated_rooms):
        return Presence.AWAY
    return Presence.HOME


def person_ids(status: Mapping[str, Any]) -> list[str]:
    return [p["id"] for p in _objects(status, "persons") if isinstance(p.get("id"), str)]


def _thermostat(
    home_id: str,
    room: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    modules: Mapping[str, Mapping[str, Any]],
    module_status: Mapping[str, Mapping[str, Any]],
    reading: HomeReading,
    problems: Problems,
) -> Thermostat:
    room_id = room["id"]
    members = [
        m for m in _ids(room, "module_ids") if _module_type(modules.get(m)) in THERMOSTAT_MODULES
    ]
    name = _name(room, room_id)
    common: dict[str, Any] = {"id": room_id, "name": name, "structure_id": home_id, "room": name}
    if status is None:  # homesdata knows the room, homestatus says nothing about it
        return Thermostat(**common, online=False)
    f = problems.fields(status, room_id)
    mode = f.enum("therm_setpoint_mode", ROOM_MODES, default="schedule")
    reachable = f.flag("reachable", default=True)
    member_status = [problems.fields(module_status.get(m, {}), m) for m in members]
    modules_ok = [m.flag("reachable", default=True) for m in member_status]
    online = (
        None
        if reachable is None or None in modules_ok
        else reachable and all(modules_ok) and not any(m in reading.errors for m in members)
    )
    return Thermostat(
        **common,
        online=online,
        mode=mode,
        heat_setpoint_c=None
        if mode is ThermostatMode.OFF
        else f.celsius("therm_setpoint_temperature"),
        ambient_c=f.celsius("therm_measured_temperature"),
        humidity=f.percent("humidity"),
        hvac=_activity(f, member_status),
        can_heat=True,
        can_cool=False,
        allowed_range_c=ALLOWED_RANGE_C,
    )


def _activity(room: Fields, modules: Sequence[Fields]) -> HvacActivity | None:
    power = room.percent("heating_power_request")
    boilers = [m.flag("boiler_status", default=False) for m in modules]
    if True in boilers or (power is not None and power > 0):
        return HvacActivity.HEATING
    if None in boilers or (power is None and room.has("heating_power_request")):
        return None
    return HvacActivity.IDLE


def _by_id(f: Fields, key: str) -> dict[str, Mapping[str, Any]]:
    """The objects of a list, by their `id` (an item without one is noted and left out)."""
    found: dict[str, Mapping[str, Any]] = {}
    for item in f.children(key):
        ident = item.get("id")
        if isinstance(ident, str) and ident:
            found[ident] = item
        else:
            f.bad(key, "missing id", ident)
    return found


def _objects(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = raw.get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _module_type(module: Mapping[str, Any] | None) -> str:
    value = module.get("type") if module is not None else None
    return value if isinstance(value, str) else ""


def _room_name(rooms: Mapping[str, Mapping[str, Any]], room_id: Any) -> str | None:
    room = rooms.get(room_id) if isinstance(room_id, str) else None
    return _name(room, room_id) if room is not None else None


def _name(raw: Mapping[str, Any], fallback: str) -> str:
    value = raw.get("name")
    return value if isinstance(value, str) and value else fallback


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _ids(raw: Mapping[str, Any], key: str) -> list[str]:
    value = raw.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}: {key} is missing or not a string")
    return value
