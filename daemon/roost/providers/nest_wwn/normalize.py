"""Works with Nest documents → the normalized home, plus the two stream helpers.

`normalize` turns a whole WWN document (`devices`, `structures`, `metadata`) into a `Home`;
a `Normalizer` does the same for a stream of documents, redoing only what changed.
`apply_put` applies one stream `put` to the held document. `camera_events` finds the camera
events (`last_event`) that are new between two documents, so each is reported once.
All functions are pure: they never change their arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from roost import errors
from roost.events import Context, DeviceEvent, Motion, Person, Sound
from roost.ids import new_id
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

Document = dict[str, Any]
E = TypeVar("E", bound=Enum)
V = TypeVar("V")

ALLOWED_RANGE_C = (9.0, 32.0)  # WWN's documented target-temperature bounds

_HVAC_STATE = {
    "heating": HvacActivity.HEATING,
    "cooling": HvacActivity.COOLING,
    "off": HvacActivity.IDLE,
}
_AWAY = {"home": Presence.HOME, "away": Presence.AWAY, "auto-away": Presence.AWAY}


class PayloadError(errors.PayloadError):
    """A WWN document (or a part of it) that roost cannot use."""


def normalize(document: Mapping[str, Any], account: str) -> Home:
    """The normalized picture of a whole WWN document."""
    doc = _mapping(document, "document")
    structures_raw = _section(doc, "structures")
    devices_raw = _section(doc, "devices")
    wheres = _wheres(structures_raw)
    devices: dict[str, Device] = {}
    for section, build in _BUILDERS.items():
        for device_id, raw in _section(devices_raw, section).items():
            where = f"devices.{section}.{device_id}"
            devices[device_id] = build(device_id, _mapping(raw, where), wheres)
    structures = {
        sid: _structure(sid, _mapping(raw, f"structures.{sid}"))
        for sid, raw in structures_raw.items()
    }
    return Home(account, structures, devices)


class Normalizer:
    """`normalize`, incrementally: one per stream. WWN puts the whole document again on
    every change, so each device's (and structure's) raw dict is kept with its normalized
    object, and only the entries whose raw dict changed are normalized again; the others
    keep their object (an unchanged device is the very same object, cheap to diff).

    The result equals `normalize(document, account)` for every document.
    """

    def __init__(self, account: str) -> None:
        self.account = account
        self._structures: dict[str, tuple[Any, Structure]] = {}
        self._devices: dict[tuple[str, str], tuple[Any, Device]] = {}
        self._wheres: dict[str, str] = {}

    def __call__(self, document: Mapping[str, Any]) -> Home:
        doc = _mapping(document, "document")
        structures_raw = _section(doc, "structures")
        devices_raw = _section(doc, "devices")
        wheres = _wheres(structures_raw)
        if wheres != self._wheres:  # room names come from the structures: redo them all
            self._devices = {}
            self._wheres = wheres
        held_devices, devices = self._devices, {}
        fresh: dict[tuple[str, str], tuple[Any, Device]] = {}
        for section, build in _BUILDERS.items():
            for device_id, raw in _section(devices_raw, section).items():
                key = (section, device_id)
                held = held_devices.get(key)
                if held is None or not _same(held[0], raw):
                    where = f"devices.{section}.{device_id}"
                    held = (raw, build(device_id, _mapping(raw, where), wheres))
                fresh[key] = held
                devices[device_id] = held[1]
        held_structures, structures = self._structures, {}
        kept: dict[str, tuple[Any, Structure]] = {}
        for sid, raw in structures_raw.items():
            known = held_structures.get(sid)
            if known is None or not _same(known[0], raw):
                known = (raw, _structure(sid, _mapping(raw, f"structures.{sid}")))
            kept[sid] = known
            structures[sid] = known[1]
        self._devices, self._structures = fresh, kept
        return Home(self.account, structures, devices)


def _same(held: Any, raw: Any) -> bool:
    return held is raw or held == raw


def previous_mode(document: Mapping[str, Any] | None, device_id: str) -> ThermostatMode | None:
    """The thermostat's `previous_hvac_mode` (the mode eco returns to), if known and usable."""
    if document is None:
        return None
    device = document.get("devices", {}).get("thermostats", {}).get(device_id, {})
    raw = device.get("previous_hvac_mode") if isinstance(device, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        mode = ThermostatMode(raw)
    except ValueError:
        return None
    return None if mode is ThermostatMode.ECO else mode


def display_scale(document: Mapping[str, Any] | None, device_id: str) -> str:
    """The thermostat's `temperature_scale` ("C" or "F"): the scale its setpoints are written in."""
    device = (document or {}).get("devices", {}).get("thermostats", {}).get(device_id, {})
    scale = device.get("temperature_scale") if isinstance(device, Mapping) else None
    return "F" if scale == "F" else "C"


def apply_put(document: Mapping[str, Any] | None, path: str, data: Any) -> Document:
    """The document after a stream `put`: `data` replaces the subtree at `path`.

    A `null` data removes the subtree. The input is not changed; the dicts along `path`
    are copied, everything else is shared.
    """
    keys = [k for k in path.split("/") if k]
    if not keys:
        return dict(_mapping(data, "put data at /")) if data is not None else {}
    return _replace(document or {}, keys, data)


def camera_events(
    previous: Mapping[str, Any] | None,
    current: Mapping[str, Any],
    account: str,
    *,
    at: datetime,
    catch_up: bool = False,
) -> list[DeviceEvent]:
    """The camera events in `current` that `previous` did not have yet.

    A camera seen for the first time (or the very first document) is a baseline: its
    `last_event` may be hours old, so it is not reported.
    """
    if previous is None:
        return []
    before = _cameras(previous)
    context = Context(catch_up=catch_up)
    found: list[DeviceEvent] = []
    for device_id, camera in _cameras(current).items():
        if device_id not in before:
            continue
        new, old = _last_event(camera), _last_event(before[device_id])
        started = _parse_time(new.get("start_time")) if new is not None else None
        if new is None or started is None:
            continue
        for cls in _new_kinds(new, old):
            found.append(
                cls(
                    id=new_id(),
                    at=at,
                    account=account,
                    structure=_optional_str(camera, "structure_id"),
                    device=device_id,
                    context=context,
                    started_at=started,
                    vendor_id=f"{device_id}@{new['start_time']}",
                )
            )
    return found


def _new_kinds(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[type[DeviceEvent]]:
    """The kinds `new` reports that `old` had not reported for the same event yet."""
    same_event = old is not None and old.get("start_time") == new.get("start_time")
    seen = {flag for flag, _ in _EVENT_KINDS if same_event and old is not None and old.get(flag)}
    return [cls for flag, cls in _EVENT_KINDS if new.get(flag) is True and flag not in seen]


_EVENT_KINDS: tuple[tuple[str, type[DeviceEvent]], ...] = (
    ("has_motion", Motion),
    ("has_person", Person),
    ("has_sound", Sound),
)


# --- devices -----------------------------------------------------------------------------


def _thermostat(device_id: str, raw: Mapping[str, Any], wheres: dict[str, str]) -> Thermostat:
    where = f"thermostat {device_id}"
    mode = _enum(ThermostatMode, raw.get("hvac_mode", "off"), f"{where}: hvac_mode")
    eco_range = _pair(raw, "eco_temperature_low_c", "eco_temperature_high_c", where)
    heat, cool = _active_setpoints(raw, mode, eco_range, where)
    locked = _bool(raw, "is_locked", where)
    return Thermostat(
        **_common(device_id, raw, wheres),
        mode=mode,
        heat_setpoint_c=heat,
        cool_setpoint_c=cool,
        ambient_c=_number(raw, "ambient_temperature_c", where),
        humidity=_number(raw, "humidity", where),
        hvac=_lookup(_HVAC_STATE, raw.get("hvac_state", "off"), f"{where}: hvac_state"),
        can_heat=_bool(raw, "can_heat", where, default=True),
        can_cool=_bool(raw, "can_cool", where),
        has_fan=_bool(raw, "has_fan", where),
        fan_timer_active=_bool(raw, "fan_timer_active", where),
        fan_timer_until=_fan_timer_until(raw),
        emergency_heat=_bool(raw, "is_using_emergency_heat", where),
        allowed_range_c=ALLOWED_RANGE_C,
        locked=locked,
        locked_range_c=_pair(raw, "locked_temp_min_c", "locked_temp_max_c", where)
        if locked
        else None,
        eco_range_c=eco_range,
    )


def _active_setpoints(
    raw: Mapping[str, Any],
    mode: ThermostatMode,
    eco_range: tuple[float, float] | None,
    where: str,
) -> tuple[float | None, float | None]:
    if mode is ThermostatMode.HEAT:
        return _number(raw, "target_temperature_c", where), None
    if mode is ThermostatMode.COOL:
        return None, _number(raw, "target_temperature_c", where)
    if mode is ThermostatMode.HEAT_COOL:
        low = _number(raw, "target_temperature_low_c", where)
        return low, _number(raw, "target_temperature_high_c", where)
    if mode is ThermostatMode.ECO:
        return eco_range if eco_range is not None else (None, None)
    return None, None


def _fan_timer_until(raw: Mapping[str, Any]) -> datetime | None:
    if raw.get("fan_timer_active") is not True:
        return None
    until = _parse_time(raw.get("fan_timer_timeout"))
    if until is None or until.year <= 1970:
        return None
    return until


def _smoke_co_alarm(device_id: str, raw: Mapping[str, Any], wheres: dict[str, str]) -> SmokeCoAlarm:
    where = f"smoke_co_alarm {device_id}"
    return SmokeCoAlarm(
        **_common(device_id, raw, wheres),
        smoke=_enum(AlarmState, raw.get("smoke_alarm_state", "ok"), f"{where}: smoke_alarm_state"),
        co=_enum(AlarmState, raw.get("co_alarm_state", "ok"), f"{where}: co_alarm_state"),
        battery=_enum(BatteryHealth, raw.get("battery_health", "ok"), f"{where}: battery_health"),
    )


def _camera(device_id: str, raw: Mapping[str, Any], wheres: dict[str, str]) -> Camera:
    where = f"camera {device_id}"
    cls = Doorbell if raw.get("is_doorbell") is True else Camera
    return cls(
        **_common(device_id, raw, wheres),
        streaming=_bool(raw, "is_streaming", where, default=True),
    )


_BUILDERS = {
    "thermostats": _thermostat,
    "smoke_co_alarms": _smoke_co_alarm,
    "cameras": _camera,
}


def _common(device_id: str, raw: Mapping[str, Any], wheres: dict[str, str]) -> dict[str, Any]:
    where = f"device {device_id}"
    structure_id = raw.get("structure_id")
    if not isinstance(structure_id, str) or not structure_id:
        raise PayloadError(f"{where}: structure_id is missing")
    room = _optional_str(raw, "where_name")
    if room is None:
        room = wheres.get(_optional_str(raw, "where_id") or "")
    return {
        "id": device_id,
        "name": _optional_str(raw, "name") or _optional_str(raw, "name_long") or device_id,
        "structure_id": structure_id,
        "room": room,
        "online": _bool(raw, "is_online", where, default=True),
    }


# --- structures ----------------------------------------------------------------------------


def _structure(structure_id: str, raw: Mapping[str, Any]) -> Structure:
    where = f"structure {structure_id}"
    return Structure(
        id=structure_id,
        name=_optional_str(raw, "name") or structure_id,
        presence=_lookup(_AWAY, raw.get("away", "home"), f"{where}: away"),
        time_zone=_optional_str(raw, "time_zone"),
    )


def _wheres(structures: Mapping[str, Any]) -> dict[str, str]:
    """where_id → room name, from every structure's `wheres` (a fallback for where_name)."""
    names: dict[str, str] = {}
    for raw in structures.values():
        wheres = raw.get("wheres") if isinstance(raw, Mapping) else None
        if not isinstance(wheres, Mapping):
            continue
        for where_id, where in wheres.items():
            if isinstance(where, Mapping) and isinstance(where.get("name"), str):
                names[where_id] = where["name"]
    return names


# --- stream helpers ------------------------------------------------------------------------


def _replace(node: Mapping[str, Any], keys: list[str], data: Any) -> Document:
    copy = dict(node)
    head, rest = keys[0], keys[1:]
    if rest:
        child = copy.get(head)
        copy[head] = _replace(child if isinstance(child, Mapping) else {}, rest, data)
    elif data is None:
        copy.pop(head, None)
    else:
        copy[head] = data
    return copy


def _cameras(document: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    devices = document.get("devices")
    cameras = devices.get("cameras") if isinstance(devices, Mapping) else None
    if not isinstance(cameras, Mapping):
        return {}
    return {k: v for k, v in cameras.items() if isinstance(v, Mapping)}


def _last_event(camera: Mapping[str, Any]) -> Mapping[str, Any] | None:
    event = camera.get("last_event")
    return event if isinstance(event, Mapping) else None


# --- field readers -------------------------------------------------------------------------


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise PayloadError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _section(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return {} if value is None else _mapping(value, key)


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{where}: {key} is not a number: {value!r}")
    return float(value)


def _pair(raw: Mapping[str, Any], low: str, high: str, where: str) -> tuple[float, float] | None:
    a, b = _number(raw, low, where), _number(raw, high, where)
    return None if a is None or b is None else (a, b)


def _bool(raw: Mapping[str, Any], key: str, where: str, *, default: bool = False) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise PayloadError(f"{where}: {key} is not a boolean: {value!r}")
    return value


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def _enum(cls: type[E], value: Any, where: str) -> E:
    try:
        return cls(value)
    except ValueError:
        raise PayloadError(f"{where}: unknown value {value!r}") from None


def _lookup(table: Mapping[str, V], value: Any, where: str) -> V:
    if not isinstance(value, str) or value not in table:
        raise PayloadError(f"{where}: unknown value {value!r}")
    return table[value]


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
