"""Nest web buckets → the normalized home.

A structure is `structure.<id>` (`away` is a boolean; `swarm` lists its devices) with its
room names in `where.<id>`. A thermostat is three buckets: `shared.<serial>` (temperatures,
`target_temperature_type`, what the HVAC is doing), `device.<serial>` (eco, fan timer,
humidity, lock, the eco temperatures, still named `away_temperature_*`) and
`track.<serial>` (`online`). A Protect is `topaz.<serial>`, whose `smoke_status` and
`co_status` are 0 (ok), 1–2 (warning) or 3 (emergency), as badnest reads them.
A thermostat's schedule is `schedule.<serial>`; the normalized home has no place for
schedules yet, so `schedule` reads one into `ScheduleEntry`s of its own.
All temperatures are °C. Functions are pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from roost.model import (
    AlarmState,
    BatteryHealth,
    Device,
    Home,
    HvacActivity,
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.providers.nest_web.buckets import PayloadError

Buckets = Mapping[str, Mapping[str, Any]]
T = TypeVar("T")

ALLOWED_RANGE_C = (9.0, 32.0)  # the targets a Nest thermostat accepts
TARGET_TYPES = {
    "heat": ThermostatMode.HEAT,
    "cool": ThermostatMode.COOL,
    "range": ThermostatMode.HEAT_COOL,
    "off": ThermostatMode.OFF,
}
ECO_MODES = frozenset({"manual-eco", "auto-eco"})  # device.eco.mode; "schedule" is eco off


def normalize(
    buckets: Buckets, account: str, *, now: datetime, previous: Home | None = None
) -> tuple[Home, list[str]]:
    """The home the buckets describe, and the problems found on the way.

    A structure or device whose buckets cannot be read keeps its `previous` form (a bad
    bucket must not look like a removed device); without one it is left out.
    """
    problems: list[str] = []
    structures: dict[str, Structure] = {}
    devices: dict[str, Device] = {}
    for key, value in buckets.items():
        kind, _, structure_id = key.partition(".")
        if kind != "structure":
            continue
        found = _attempt(problems, _structure, structure_id, value)
        _store(structures, structure_id, found, previous)
        rooms = _rooms(buckets.get(f"where.{structure_id}"))
        for ref in _swarm(value):
            kind, _, serial = ref.partition(".")
            build = _BUILDERS.get(kind)
            if build is not None:
                device = _attempt(problems, build, serial, structure_id, buckets, rooms, now)
                _store(devices, serial, device, previous)
    return Home(account, structures, devices), problems


def base_mode(buckets: Buckets, serial: str) -> ThermostatMode | None:
    """The thermostat's `target_temperature_type`: its mode, or in eco the one eco leaves to."""
    shared = buckets.get(f"shared.{serial}")
    if shared is None:
        return None
    try:
        return _target_type(shared, f"thermostat {serial}")
    except PayloadError:
        return None


def _attempt(problems: list[str], build: Callable[..., T], *args: Any) -> T | None:
    """`build(*args)`, or None with the problem noted."""
    try:
        return build(*args)
    except PayloadError as exc:
        problems.append(str(exc))
        return None


def _store(into: dict[str, Any], ident: str, built: object, previous: Home | None) -> None:
    """Keep what was built, else what `previous` had under that id, if anything."""
    if built is None and previous is not None:
        built = previous.structures.get(ident) or previous.devices.get(ident)
    if built is not None:
        into[ident] = built


# --- structures --------------------------------------------------------------------------


def _structure(structure_id: str, raw: Mapping[str, Any]) -> Structure:
    where = f"structure {structure_id}"
    away = _bool(raw, "away", where)
    return Structure(
        id=structure_id,
        name=_optional_str(raw, "name") or structure_id,
        presence=Presence.AWAY if away else Presence.HOME,
        time_zone=_optional_str(raw, "time_zone"),
    )


def _swarm(raw: Mapping[str, Any]) -> list[str]:
    swarm = raw.get("swarm")
    return [ref for ref in swarm if isinstance(ref, str)] if isinstance(swarm, list) else []


def _rooms(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """where_id → room name, from a `where.<structure>` bucket."""
    wheres = raw.get("wheres") if raw is not None else None
    if not isinstance(wheres, list):
        return {}
    return {
        w["where_id"]: w["name"]
        for w in wheres
        if isinstance(w, Mapping) and isinstance(w.get("where_id"), str)
        if isinstance(w.get("name"), str)
    }


# --- thermostats -------------------------------------------------------------------------


def _thermostat(
    serial: str, structure_id: str, buckets: Buckets, rooms: dict[str, str], now: datetime
) -> Thermostat:
    where = f"thermostat {serial}"
    device, shared = buckets.get(f"device.{serial}"), buckets.get(f"shared.{serial}")
    if device is None or shared is None:
        raise PayloadError(f"{where}: the device. or shared. bucket is missing")
    base = _target_type(shared, where)
    mode = ThermostatMode.ECO if _eco_on(device, where) else base
    eco_low, eco_high = _eco_setpoints(device, where)
    heat, cool = _active_setpoints(shared, mode, (eco_low, eco_high), where)
    locked = _bool(device, "temperature_lock", where)
    fan_until = _fan_timer_until(device, now, where)
    room = rooms.get(_optional_str(device, "where_id") or "")
    return Thermostat(
        id=serial,
        name=_optional_str(shared, "name") or room or "Thermostat",
        structure_id=structure_id,
        room=room,
        online=_online(buckets, serial, where),
        mode=mode,
        heat_setpoint_c=heat,
        cool_setpoint_c=cool,
        ambient_c=_number(shared, "current_temperature", where),
        humidity=_number(device, "current_humidity", where),
        hvac=_hvac(shared, where),
        can_heat=_bool(shared, "can_heat", where, default=True),
        can_cool=_bool(shared, "can_cool", where),
        has_fan=_bool(device, "has_fan", where),
        fan_timer_active=fan_until is not None,
        fan_timer_until=fan_until,
        allowed_range_c=ALLOWED_RANGE_C,
        locked=locked,
        locked_range_c=_pair(
            device, "temperature_lock_low_temp", "temperature_lock_high_temp", where
        )
        if locked
        else None,
        eco_range_c=None if eco_low is None or eco_high is None else (eco_low, eco_high),
    )


def _target_type(shared: Mapping[str, Any], where: str) -> ThermostatMode:
    raw = shared.get("target_temperature_type", "off")
    mode = TARGET_TYPES.get(raw.lower()) if isinstance(raw, str) else None
    if mode is None:
        raise PayloadError(f"{where}: unknown target_temperature_type {raw!r}")
    return mode


def _eco_on(device: Mapping[str, Any], where: str) -> bool:
    eco = device.get("eco")
    if eco is None:
        return False  # thermostats from before eco
    mode = eco.get("mode") if isinstance(eco, Mapping) else None
    if not isinstance(mode, str):
        raise PayloadError(f"{where}: eco is not {{'mode': …}}: {eco!r}")
    return mode in ECO_MODES


def _eco_setpoints(device: Mapping[str, Any], where: str) -> tuple[float | None, float | None]:
    """The eco (formerly "away") temperatures that are enabled."""
    low = _number(device, "away_temperature_low", where)
    high = _number(device, "away_temperature_high", where)
    low_on = _bool(device, "away_temperature_low_enabled", where, default=True)
    high_on = _bool(device, "away_temperature_high_enabled", where, default=True)
    return (low if low_on else None), (high if high_on else None)


def _active_setpoints(
    shared: Mapping[str, Any],
    mode: ThermostatMode,
    eco: tuple[float | None, float | None],
    where: str,
) -> tuple[float | None, float | None]:
    if mode is ThermostatMode.HEAT:
        return _number(shared, "target_temperature", where), None
    if mode is ThermostatMode.COOL:
        return None, _number(shared, "target_temperature", where)
    if mode is ThermostatMode.HEAT_COOL:
        low = _number(shared, "target_temperature_low", where)
        return low, _number(shared, "target_temperature_high", where)
    if mode is ThermostatMode.ECO:
        can_cool = _bool(shared, "can_cool", where)
        return eco[0], (eco[1] if can_cool else None)
    return None, None


def _hvac(shared: Mapping[str, Any], where: str) -> HvacActivity:
    heating = ("hvac_heater_state", "hvac_heat_x2_state", "hvac_aux_heater_state")
    if any(_bool(shared, name, where) for name in heating):
        return HvacActivity.HEATING
    if _bool(shared, "hvac_ac_state", where):
        return HvacActivity.COOLING
    return HvacActivity.IDLE


def _fan_timer_until(device: Mapping[str, Any], now: datetime, where: str) -> datetime | None:
    """`fan_timer_timeout` is unix seconds, 0 when the timer is off."""
    timeout = _number(device, "fan_timer_timeout", where)
    if timeout is None or timeout <= now.timestamp():
        return None
    return datetime.fromtimestamp(timeout, UTC)


def _online(buckets: Buckets, serial: str, where: str) -> bool:
    track = buckets.get(f"track.{serial}")
    return True if track is None else _bool(track, "online", where, default=True)


# --- Protects ----------------------------------------------------------------------------


def _smoke_co_alarm(
    serial: str, structure_id: str, buckets: Buckets, rooms: dict[str, str], now: datetime
) -> SmokeCoAlarm:
    where = f"topaz {serial}"
    topaz = buckets.get(f"topaz.{serial}")
    if topaz is None:
        raise PayloadError(f"{where}: the topaz. bucket is missing")
    room = rooms.get(_optional_str(topaz, "where_id") or "")
    battery = _number(topaz, "battery_health_state", where)
    return SmokeCoAlarm(
        id=serial,
        name=_optional_str(topaz, "description") or room or "Nest Protect",
        structure_id=structure_id,
        room=room,
        online=_online(buckets, serial, where),
        smoke=_alarm(topaz, "smoke_status", where),
        co=_alarm(topaz, "co_status", where),
        battery=BatteryHealth.OK if not battery else BatteryHealth.REPLACE,
    )


def _alarm(topaz: Mapping[str, Any], key: str, where: str) -> AlarmState:
    """0 ok, 1–2 warning, 3 emergency; a higher (unknown) level is read as an emergency,
    the cautious side."""
    value = topaz.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PayloadError(f"{where}: {key} is not a status level: {value!r}")
    if value == 0:
        return AlarmState.OK
    return AlarmState.WARNING if value <= 2 else AlarmState.EMERGENCY


_BUILDERS: dict[str, Callable[[str, str, Buckets, dict[str, str], datetime], Device]] = {
    "device": _thermostat,
    "topaz": _smoke_co_alarm,
}


# --- fields ------------------------------------------------------------------------------


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


# --- schedules -----------------------------------------------------------------------------

_SCHEDULE_MODES = {
    "HEAT": ThermostatMode.HEAT,
    "COOL": ThermostatMode.COOL,
    "RANGE": ThermostatMode.HEAT_COOL,
}


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One set-point of a schedule: from `time_s` after midnight of `day` (0–6, as the
    service numbers the days) the thermostat holds these temperatures."""

    day: int
    time_s: int
    mode: ThermostatMode
    heat_c: float | None
    cool_c: float | None


def schedule(value: Mapping[str, Any], serial: str) -> tuple[ScheduleEntry, ...]:
    """The set-points of a `schedule.` bucket in day and time order. The "continuation"
    entries at midnight only carry the day before's last set-point over, and are left out."""
    where = f"schedule {serial}"
    days = value.get("days", {})
    if not isinstance(days, Mapping):
        raise PayloadError(f"{where}: days is not an object")
    entries = []
    for day, by_index in days.items():
        if not isinstance(by_index, Mapping) or not str(day).isdigit():
            raise PayloadError(f"{where}: day {day!r} is not a numbered set of entries")
        for raw in by_index.values():
            if not isinstance(raw, Mapping):
                raise PayloadError(f"{where}: an entry of day {day} is not an object")
            if raw.get("entry_type") != "continuation":
                entries.append(_schedule_entry(int(day), raw, where))
    return tuple(sorted(entries, key=lambda e: (e.day, e.time_s)))


def _schedule_entry(day: int, raw: Mapping[str, Any], where: str) -> ScheduleEntry:
    mode = _SCHEDULE_MODES.get(raw.get("type", ""))
    time_s = _number(raw, "time", where)
    if mode is None or time_s is None:
        raise PayloadError(f"{where}: day {day}: entry without a known type and a time: {raw!r}")
    if mode is ThermostatMode.HEAT_COOL:  # the field names of a range are a guess
        heat, cool = _number(raw, "temp-min", where), _number(raw, "temp-max", where)
    else:
        temp = _number(raw, "temp", where)
        heat, cool = (temp, None) if mode is ThermostatMode.HEAT else (None, temp)
    return ScheduleEntry(day, int(time_s), mode, heat, cool)
