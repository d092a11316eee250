"""Works with Nest documents → the normalized home, plus the two stream helpers.

`normalize` turns a whole WWN document (`devices`, `structures`, `metadata`) into a `Home`;
a `Normalizer` does the same for a stream of documents, redoing only what changed.
`apply_put` applies one stream `put` to the held document. `camera_events` finds the camera
events (`last_event`) that are new between two documents, so each is reported once.
All functions are pure: they never change their arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from roost.core.errors import PayloadError
from roost.core.events import Context, DeviceEvent, Motion, Person, Sound
from roost.core.ids import new_id
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
from roost.providers.bounds import check_devices, check_path
from roost.providers.readers import Fields, Problems, active_setpoints, pair, parse_time

Document = dict[str, Any]
Builder = Callable[[str, Fields, dict[str, str]], Device]

ALLOWED_RANGE_C = (9.0, 32.0)  # WWN's documented target-temperature bounds

# Where the (heat, cool, heat-cool low, heat-cool high) setpoints are.
SETPOINT_KEYS = (
    "target_temperature_c",
    "target_temperature_c",
    "target_temperature_low_c",
    "target_temperature_high_c",
)
_HVAC_STATE = {
    "heating": HvacActivity.HEATING,
    "cooling": HvacActivity.COOLING,
    "off": HvacActivity.IDLE,
}
_AWAY = {"home": Presence.HOME, "away": Presence.AWAY, "auto-away": Presence.AWAY}
_MODES = {m.value: m for m in ThermostatMode}
_ALARM = {a.value: a for a in AlarmState}
_BATTERY = {b.value: b for b in BatteryHealth}


def normalize(document: Mapping[str, Any], account: str, problems: Problems | None = None) -> Home:
    """The normalized picture of a whole WWN document. Unreadable fields are unknown
    (None) and noted in `problems`; a device without a readable structure is left out."""
    return Normalizer(account)(document, problems)


class Normalizer:
    """`normalize`, incrementally: one per stream. WWN puts the whole document again on
    every change, so each device's (and structure's) raw dict is kept with its normalized
    object, and only the entries whose raw dict changed are normalized again; the others
    keep their object (an unchanged device is the very same object, cheap to diff).

    The result equals `normalize(document, account)` for every document. A device whose
    raw object or structure cannot be read keeps its last normalized form.
    """

    def __init__(self, account: str) -> None:
        self.account = account
        self._structures: dict[str, tuple[Any, Structure]] = {}
        self._devices: dict[tuple[str, str], tuple[Any, Device]] = {}
        self._wheres: dict[str, str] = {}

    def __call__(self, document: Mapping[str, Any], problems: Problems | None = None) -> Home:
        found = problems if problems is not None else Problems()
        doc = _mapping(document, "document")
        structures_raw = _section(doc, "structures")
        devices_raw = _section(doc, "devices")
        check_devices(sum(len(v) for v in devices_raw.values() if isinstance(v, Mapping)))
        wheres = _wheres(structures_raw)
        if wheres != self._wheres:  # room names come from the structures: redo them all
            self._devices = {}
            self._wheres = wheres
        held_devices, devices = self._devices, {}
        fresh: dict[tuple[str, str], tuple[Any, Device]] = {}
        for section, build in _BUILDERS.items():
            raws = devices_raw.get(section)
            if raws is not None and not isinstance(raws, Mapping):
                found.note("devices", section, "wrong type", raws)
                raws = {k[1]: v[0] for k, v in held_devices.items() if k[0] == section}
            for device_id, raw in (raws or {}).items():
                key = (section, device_id)
                held = held_devices.get(key)
                if held is None or not _same(held[0], raw):
                    built = _device(build, device_id, raw, wheres, found, held)
                    if built is None:
                        continue
                    held = (raw, built)
                fresh[key] = held
                devices[device_id] = held[1]
        held_structures, structures = self._structures, {}
        kept: dict[str, tuple[Any, Structure]] = {}
        for sid, raw in structures_raw.items():
            known = held_structures.get(sid)
            if known is None or not _same(known[0], raw):
                fields = found.fields(raw, sid)
                if not isinstance(raw, Mapping):
                    if known is None:
                        continue
                else:
                    known = (raw, _structure(sid, fields))
            kept[sid] = known
            structures[sid] = known[1]
        self._devices, self._structures = fresh, kept
        return Home(self.account, structures, devices)


def _device(
    build: Builder,
    device_id: str,
    raw: Any,
    wheres: dict[str, str],
    problems: Problems,
    held: tuple[Any, Device] | None,
) -> Device | None:
    """The device built from `raw`; one whose object or structure is unreadable keeps its
    `held` form (a bad field must not look like a removed device), or is left out."""
    fields = problems.fields(raw, device_id)
    if not isinstance(raw, Mapping):
        return held[1] if held is not None else None
    structure_id = fields.text("structure_id")
    if structure_id is None:
        if "structure_id" not in raw:
            fields.bad("structure_id", "missing", None)
        if held is None:
            return None
        structure_id = held[1].structure_id
    return build(structure_id, fields, wheres)


def _same(held: Any, raw: Any) -> bool:
    return held is raw or held == raw


def previous_mode(document: Mapping[str, Any] | None, device_id: str) -> ThermostatMode | None:
    """The thermostat's `previous_hvac_mode` (the mode eco returns to), if known and usable."""
    if document is None:
        return None
    device: Any = document
    for key in ("devices", "thermostats", device_id):
        device = device.get(key) if isinstance(device, Mapping) else None
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
    keys = check_path(path)
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
        started = parse_time(new.get("start_time")) if new is not None else None
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


def _thermostat(structure_id: str, f: Fields, wheres: dict[str, str]) -> Thermostat:
    mode = f.enum("hvac_mode", _MODES, default="off")
    eco_range = pair(f.celsius("eco_temperature_low_c"), f.celsius("eco_temperature_high_c"))
    heat, cool = active_setpoints(f, mode, SETPOINT_KEYS, eco_range)
    locked = f.flag("is_locked", default=False)
    fan_active = f.flag("fan_timer_active", default=False)
    return Thermostat(
        **_common(structure_id, f, wheres),
        mode=mode,
        heat_setpoint_c=heat,
        cool_setpoint_c=cool,
        ambient_c=f.celsius("ambient_temperature_c"),
        humidity=f.percent("humidity"),
        hvac=f.enum("hvac_state", _HVAC_STATE, default="off"),
        can_heat=f.flag("can_heat", default=True),
        can_cool=f.flag("can_cool", default=False),
        has_fan=f.flag("has_fan", default=False),
        fan_timer_active=fan_active,
        fan_timer_until=_fan_timer_until(f) if fan_active else None,
        emergency_heat=f.flag("is_using_emergency_heat", default=False),
        allowed_range_c=ALLOWED_RANGE_C,
        locked=locked,
        locked_range_c=None
        if locked is False
        else pair(f.celsius("locked_temp_min_c"), f.celsius("locked_temp_max_c")),
        eco_range_c=eco_range,
    )


def _fan_timer_until(f: Fields) -> datetime | None:
    until = parse_time(f.raw("fan_timer_timeout"))
    if until is None or until.year <= 1970:
        return None
    return until


def _smoke_co_alarm(structure_id: str, f: Fields, wheres: dict[str, str]) -> SmokeCoAlarm:
    return SmokeCoAlarm(
        **_common(structure_id, f, wheres),
        smoke=f.enum("smoke_alarm_state", _ALARM, default="ok"),
        co=f.enum("co_alarm_state", _ALARM, default="ok"),
        battery=f.enum("battery_health", _BATTERY, default="ok"),
    )


def _camera(structure_id: str, f: Fields, wheres: dict[str, str]) -> Camera:
    cls = Doorbell if f.raw("is_doorbell") is True else Camera
    return cls(**_common(structure_id, f, wheres), streaming=f.flag("is_streaming", default=True))


_BUILDERS: dict[str, Builder] = {
    "thermostats": _thermostat,
    "smoke_co_alarms": _smoke_co_alarm,
    "cameras": _camera,
}


def _common(structure_id: str, f: Fields, wheres: dict[str, str]) -> dict[str, Any]:
    room = f.text("where_name")
    if room is None:
        room = wheres.get(f.text("where_id") or "")
    return {
        "id": f.target,
        "name": f.text("name") or f.text("name_long") or f.target,
        "structure_id": structure_id,
        "room": room,
        "online": f.flag("is_online", default=True),
    }


# --- structures ----------------------------------------------------------------------------


def _structure(structure_id: str, f: Fields) -> Structure:
    return Structure(
        id=structure_id,
        name=f.text("name") or structure_id,
        presence=f.enum("away", _AWAY, default="home"),
        time_zone=f.text("time_zone"),
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


def _optional_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None
