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

from roost import errors
from roost.model import (
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
_LOW_BATTERY = frozenset({"low", "very_low"})


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
    readings: Sequence[HomeReading], account: str, alarms: Mapping[str, AlarmStates]
) -> Home:
    """The normalized picture of every home read."""
    structures: dict[str, Structure] = {}
    devices: dict[str, Device] = {}
    for reading in readings:
        structure, found = normalize_home(reading, alarms)
        structures[structure.id] = structure
        devices.update((device.id, device) for device in found)
    return Home(account, structures, devices)


def normalize_home(
    reading: HomeReading, alarms: Mapping[str, AlarmStates]
) -> tuple[Structure, list[Device]]:
    data, status = _mapping(reading.data, "home"), _mapping(reading.status, "homestatus home")
    home_id = reading.id
    rooms = {_text(r, "id", "room"): r for r in _list(data, "rooms", home_id)}
    room_status = {_text(r, "id", "room"): r for r in _list(status, "rooms", home_id)}
    module_status = {_text(m, "id", "module"): m for m in _list(status, "modules", home_id)}
    modules = {_text(m, "id", "module"): m for m in _list(data, "modules", home_id)}
    devices: list[Device] = []
    for room_id, room in rooms.items():
        types = [_module_type(modules.get(m)) for m in _ids(room, "module_ids")]
        if THERMOSTAT_MODULES.intersection(types):
            devices.append(
                _thermostat(
                    home_id, room, room_status.get(room_id), modules, module_status, reading
                )
            )
    for module_id, module in modules.items():
        kind = _module_type(module)
        raw = module_status.get(module_id, {})
        online = _reachable(raw) and module_id not in reading.errors
        common: dict[str, Any] = {
            "id": module_id,
            "name": _name(module, module_id),
            "structure_id": home_id,
            "room": _room_name(rooms, module.get("room_id")),
            "online": online,
        }
        if kind in CAMERA_MODULES:
            streaming = raw.get("monitoring", "on") != "off"
            devices.append(CAMERA_MODULES[kind](**common, streaming=streaming))
        elif kind in ALARM_MODULES:
            states = alarms.get(module_id, AlarmStates())
            battery = raw.get("battery_state")
            devices.append(
                SmokeCoAlarm(
                    **common,
                    smoke=states.smoke if kind == SMOKE_ALARM else AlarmState.OK,
                    co=states.co if kind == CO_ALARM else AlarmState.OK,
                    battery=BatteryHealth.REPLACE if battery in _LOW_BATTERY else BatteryHealth.OK,
                )
            )
    heated = [room_status[d.id] for d in devices if d.id in room_status]
    structure = Structure(
        id=home_id,
        name=_name(data, home_id),
        presence=presence(status, heated),
        time_zone=_optional_text(data, "timezone"),
    )
    return structure, devices


def presence(status: Mapping[str, Any], heated_rooms: Sequence[Mapping[str, Any]]) -> Presence:
    """Away when every person Netatmo knows is out of sight; with no persons, when every
    heated room is in the home's away mode."""
    persons = [p for p in _list(status, "persons", "homestatus") if "out_of_sight" in p]
    if persons:
        return Presence.AWAY if all(p["out_of_sight"] is True for p in persons) else Presence.HOME
    if heated_rooms and all(r.get("therm_setpoint_mode") == "away" for r in heated_rooms):
        return Presence.AWAY
    return Presence.HOME


def person_ids(status: Mapping[str, Any]) -> list[str]:
    return [p["id"] for p in _list(status, "persons", "homestatus") if isinstance(p.get("id"), str)]


def _thermostat(
    home_id: str,
    room: Mapping[str, Any],
    status: Mapping[str, Any] | None,
    modules: Mapping[str, Mapping[str, Any]],
    module_status: Mapping[str, Mapping[str, Any]],
    reading: HomeReading,
) -> Thermostat:
    room_id = _text(room, "id", "room")
    where = f"room {room_id}"
    members = [
        m for m in _ids(room, "module_ids") if _module_type(modules.get(m)) in THERMOSTAT_MODULES
    ]
    name = _name(room, room_id)
    common: dict[str, Any] = {"id": room_id, "name": name, "structure_id": home_id, "room": name}
    if status is None:  # homesdata knows the room, homestatus says nothing about it
        return Thermostat(**common, online=False)
    raw_mode = status.get("therm_setpoint_mode", "schedule")
    if raw_mode not in ROOM_MODES:
        raise PayloadError(f"{where}: unknown therm_setpoint_mode {raw_mode!r}")
    mode = ROOM_MODES[raw_mode]
    reachable = status.get("reachable", True) is not False and not any(
        m in reading.errors or not _reachable(module_status.get(m, {})) for m in members
    )
    return Thermostat(
        **common,
        online=reachable,
        mode=mode,
        heat_setpoint_c=None
        if mode is ThermostatMode.OFF
        else _number(status, "therm_setpoint_temperature", where),
        ambient_c=_number(status, "therm_measured_temperature", where),
        humidity=_number(status, "humidity", where),
        hvac=_activity(status, [module_status.get(m, {}) for m in members], where),
        can_heat=True,
        can_cool=False,
        allowed_range_c=ALLOWED_RANGE_C,
    )


def _activity(
    room: Mapping[str, Any], modules: Sequence[Mapping[str, Any]], where: str
) -> HvacActivity:
    power = _number(room, "heating_power_request", where)
    boiler = any(m.get("boiler_status") is True for m in modules)
    return (
        HvacActivity.HEATING if boiler or (power is not None and power > 0) else HvacActivity.IDLE
    )


def _reachable(raw: Mapping[str, Any]) -> bool:
    return raw.get("reachable", True) is not False


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


def _list(raw: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise PayloadError(f"{where}: {key} is not a list of objects")
    return value


def _ids(raw: Mapping[str, Any], key: str) -> list[str]:
    value = raw.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"{where}: {key} is missing or not a string")
    return value


def _optional_text(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{where}: {key} is not a number: {value!r}")
    return float(value)
