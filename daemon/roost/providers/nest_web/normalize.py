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

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from roost.core.errors import PayloadError
from roost.core.model import (
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
from roost.providers.bounds import check_devices
from roost.providers.readers import Fields, Problems, active_setpoints, eco_or, pair

Buckets = Mapping[str, Mapping[str, Any]]

ALLOWED_RANGE_C = (9.0, 32.0)  # the targets a Nest thermostat accepts
TARGET_TYPES = {
    "heat": ThermostatMode.HEAT,
    "cool": ThermostatMode.COOL,
    "range": ThermostatMode.HEAT_COOL,
    "off": ThermostatMode.OFF,
}


def normalize(
    buckets: Buckets, account: str, *, now: datetime, previous: Home | None = None
) -> tuple[Home, Problems]:
    """The home the buckets describe, and the problems found on the way.

    An unreadable field is unknown (None) for its device only. A device whose buckets are
    missing keeps its `previous` form (a bad bucket must not look like a removed device);
    without one it is left out.
    """
    problems = Problems()
    structures: dict[str, Structure] = {}
    devices: dict[str, Device] = {}
    for key, value in buckets.items():
        kind, _, structure_id = key.partition(".")
        if kind != "structure":
            continue
        structures[structure_id] = _structure(problems.fields(value, structure_id))
        rooms = _rooms(buckets.get(f"where.{structure_id}"))
        site = _Site(structure_id, buckets, rooms, now, problems)
        for ref in _swarm(value):
            kind, _, serial = ref.partition(".")
            build = _BUILDERS.get(kind)
            if build is not None:
                _store(devices, serial, build(serial, site), previous)
    check_devices(len(devices))
    return Home(account, structures, devices), problems


def base_mode(buckets: Buckets, serial: str) -> ThermostatMode | None:
    """The thermostat's `target_temperature_type`: its mode, or in eco the one eco leaves to."""
    shared = buckets.get(f"shared.{serial}")
    if shared is None:
        return None
    return Fields(shared, serial, Problems()).enum(
        "target_temperature_type", TARGET_TYPES, "off", fold=True
    )


def _store(into: dict[str, Any], ident: str, built: object, previous: Home | None) -> None:
    """Keep what was built, else what `previous` had under that id, if anything."""
    if built is None and previous is not None:
        built = previous.structures.get(ident) or previous.devices.get(ident)
    if built is not None:
        into[ident] = built


# --- structures --------------------------------------------------------------------------


def _structure(f: Fields) -> Structure:
    away = f.flag("away", default=False)
    return Structure(
        id=f.target,
        name=f.text("name") or f.target,
        presence=None if away is None else Presence.AWAY if away else Presence.HOME,
        time_zone=f.text("time_zone"),
    )


def _swarm(raw: Any) -> list[str]:
    swarm = raw.get("swarm") if isinstance(raw, Mapping) else None
    return [ref for ref in swarm if isinstance(ref, str)] if isinstance(swarm, list) else []


def _rooms(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """where_id → room name, from a `where.<structure>` bucket."""
    wheres = raw.get("wheres") if isinstance(raw, Mapping) else None
    if not isinstance(wheres, list):
        return {}
    return {
        w["where_id"]: w["name"]
        for w in wheres
        if isinstance(w, Mapping) and isinstance(w.get("where_id"), str)
        if isinstance(w.get("name"), str)
    }


# --- thermostats -------------------------------------------------------------------------


def _thermostat(serial: str, site: _Site) -> Thermostat | None:
    raw_device, raw_shared = site.bucket("device", serial), site.bucket("shared", serial)
    if raw_device is None or raw_shared is None:
        site.problems.note(serial, "device./shared.", "missing bucket", None)
        return None
    device = site.problems.fields(raw_device, serial, "device.")
    shared = site.problems.fields(raw_shared, serial, "shared.")
    mode = eco_or(
        _eco_on(device),
        lambda: shared.enum("target_temperature_type", TARGET_TYPES, default="off", fold=True),
    )
    eco_low, eco_high = _eco_setpoints(device)
    eco = eco_low, (eco_high if shared.flag("can_cool", default=False) else None)
    heat, cool = active_setpoints(shared, mode, SETPOINT_KEYS, eco)
    locked = device.flag("temperature_lock", default=False)
    fan_until = _fan_timer_until(device, site.now)
    return Thermostat(
        **site.common(serial, device, shared.text("name"), "Thermostat"),
        mode=mode,
        heat_setpoint_c=heat,
        cool_setpoint_c=cool,
        ambient_c=shared.celsius("current_temperature"),
        humidity=device.percent("current_humidity"),
        hvac=_hvac(shared),
        can_heat=shared.flag("can_heat", default=True),
        can_cool=shared.flag("can_cool", default=False),
        has_fan=device.flag("has_fan", default=False),
        fan_timer_active=None if fan_until is _UNKNOWN else fan_until is not None,
        fan_timer_until=None if fan_until is _UNKNOWN else fan_until,
        allowed_range_c=ALLOWED_RANGE_C,
        locked=locked,
        locked_range_c=None
        if locked is False
        else pair(
            device.celsius("temperature_lock_low_temp"),
            device.celsius("temperature_lock_high_temp"),
        ),
        eco_range_c=pair(eco_low, eco_high),
    )


# Where the (heat, cool, heat-cool low, heat-cool high) setpoints are.
SETPOINT_KEYS = (
    "target_temperature",
    "target_temperature",
    "target_temperature_low",
    "target_temperature_high",
)
_ECO: Mapping[str, bool] = {"manual-eco": True, "auto-eco": True, "schedule": False}
_UNKNOWN: Final = datetime.min.replace(tzinfo=UTC)  # a fan timer that cannot be read


def _eco_on(device: Fields) -> bool | None:
    if not device.has("eco"):
        return False  # thermostats from before eco
    return device.child("eco").enum("mode", _ECO)


def _eco_setpoints(device: Fields) -> tuple[float | None, float | None]:
    """The eco (formerly "away") temperatures that are enabled."""
    low = device.celsius("away_temperature_low")
    high = device.celsius("away_temperature_high")
    low_on = device.flag("away_temperature_low_enabled", default=True)
    high_on = device.flag("away_temperature_high_enabled", default=True)
    return (low if low_on else None), (high if high_on else None)


def _hvac(shared: Fields) -> HvacActivity | None:
    heating = [
        shared.flag(name, default=False)
        for name in ("hvac_heater_state", "hvac_heat_x2_state", "hvac_aux_heater_state")
    ]
    cooling = shared.flag("hvac_ac_state", default=False)
    if True in heating:
        return HvacActivity.HEATING
    if cooling is True:
        return HvacActivity.COOLING
    if None in heating or cooling is None:
        return None
    return HvacActivity.IDLE


def _fan_timer_until(device: Fields, now: datetime) -> datetime | None:
    """`fan_timer_timeout` is unix seconds, 0 when the timer is off; `_UNKNOWN` when it
    cannot be read."""
    if not device.has("fan_timer_timeout"):
        return None
    timeout = device.number("fan_timer_timeout", 0, _LATEST_TIMESTAMP)
    if timeout is None:
        return _UNKNOWN
    if timeout <= now.timestamp():
        return None
    return datetime.fromtimestamp(timeout, UTC)


_LATEST_TIMESTAMP: Final = 253402300799.0  # 9999-12-31, the last time datetime can hold


@dataclass(frozen=True, slots=True)
class _Site:
    """What a device's builder reads besides its own buckets: the structure it is in."""

    structure_id: str
    buckets: Buckets
    rooms: dict[str, str]
    now: datetime
    problems: Problems

    def bucket(self, kind: str, serial: str) -> Mapping[str, Any] | None:
        raw = self.buckets.get(f"{kind}.{serial}")
        return raw if isinstance(raw, Mapping) else None

    def common(self, serial: str, f: Fields, name: str | None, kind: str) -> dict[str, Any]:
        """What every device has; one without a name is named after its room, or `kind`."""
        room = self.rooms.get(f.text("where_id") or "")
        track = self.buckets.get(f"track.{serial}")
        online = track is None or self.problems.fields(track, serial, "track.").flag(
            "online", default=True
        )
        return {
            "id": serial,
            "name": name or room or kind,
            "structure_id": self.structure_id,
            "room": room,
            "online": online,
        }


# --- Protects ----------------------------------------------------------------------------


def _smoke_co_alarm(serial: str, site: _Site) -> SmokeCoAlarm | None:
    raw = site.bucket("topaz", serial)
    if raw is None:
        site.problems.note(serial, "topaz.", "missing bucket", None)
        return None
    topaz = site.problems.fields(raw, serial, "topaz.")
    battery = topaz.integer("battery_health_state", 0, _MAX_LEVEL)
    return SmokeCoAlarm(
        **site.common(serial, topaz, topaz.text("description"), "Nest Protect"),
        smoke=_alarm(topaz, "smoke_status"),
        co=_alarm(topaz, "co_status"),
        battery=None
        if battery is None and topaz.has("battery_health_state")
        else BatteryHealth.OK
        if not battery
        else BatteryHealth.REPLACE,
    )


_MAX_LEVEL: Final = 255


def _alarm(topaz: Fields, key: str) -> AlarmState | None:
    """0 ok, 1–2 warning, 3 emergency; a higher (unknown) level is read as an emergency,
    the cautious side. Not a level at all: unknown."""
    value = topaz.integer(key, 0, _MAX_LEVEL) if topaz.has(key) else 0
    if value is None:
        return None
    if value == 0:
        return AlarmState.OK
    return AlarmState.WARNING if value <= 2 else AlarmState.EMERGENCY


Builder = Callable[[str, _Site], Device | None]
_BUILDERS: dict[str, Builder] = {
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
    if not math.isfinite(value):
        raise PayloadError(f"{where}: {key} is not finite: {value!r}")
    return float(value)


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
