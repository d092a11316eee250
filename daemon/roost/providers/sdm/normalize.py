"""SDM structures and device records → the normalized home (PROTOCOLS.md §3.2).

Ids are the last segment of the resource name (`enterprises/p/devices/<id>`). A device's
room is its parent relation's display name, its structure the structure in that parent's
name. Eco is a separate trait in SDM (`ThermostatEco.mode = MANUAL_ECO`) while
`ThermostatMode.mode` keeps the mode eco returns to; normalized, eco *is* the mode, with the
eco range as the active setpoints. SDM has no presence, so structures are always `home`.
Unknown device types (a future one) are skipped, not fatal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from roost.events import Chime, Context, DeviceEvent, Motion, Person, Sound
from roost.ids import new_id
from roost.model import (
    Camera,
    Device,
    Doorbell,
    Home,
    HvacActivity,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.providers.sdm.messages import PayloadError, SdmEvent, parse_time
from roost.providers.sdm.records import DeviceRecord

TRAIT = "sdm.devices.traits."
TYPE = "sdm.devices.types."
UNKNOWN_STRUCTURE = "unknown"
ALLOWED_RANGE_C = (9.0, 32.0)  # the Nest thermostats' range; SDM does not report it [M]

MODES = {
    "HEAT": ThermostatMode.HEAT,
    "COOL": ThermostatMode.COOL,
    "HEATCOOL": ThermostatMode.HEAT_COOL,
    "OFF": ThermostatMode.OFF,
}
EVENT_TYPES: dict[str, type[DeviceEvent]] = {
    "CameraMotion.Motion": Motion,
    "CameraPerson.Person": Person,
    "CameraSound.Sound": Sound,
    "DoorbellChime.Chime": Chime,
}  # CameraClipPreview.ClipPreview carries media for the events above: not an event itself
_HVAC = {"HEATING": HvacActivity.HEATING, "COOLING": HvacActivity.COOLING, "OFF": HvacActivity.IDLE}


def short_id(name: str) -> str:
    """`enterprises/p/devices/abc` → `abc`."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def structure_id_of(parent: str) -> str | None:
    """The structure id in a parent (room or structure) resource name."""
    parts = parent.split("/")
    if "structures" in parts:
        index = parts.index("structures") + 1
        if index < len(parts) and parts[index]:
            return parts[index]
    return None


def structure(resource: Any) -> Structure:
    """A structure as `structures.list` returns it."""
    if not isinstance(resource, Mapping) or not isinstance(resource.get("name"), str):
        raise PayloadError("a structure without a name")
    sid = short_id(resource["name"])
    info = _trait(resource.get("traits"), "sdm.structures.traits.Info")
    return Structure(id=sid, name=_text(info.get("customName")) or sid)


def home(account: str, structures: Iterable[Structure], records: Iterable[DeviceRecord]) -> Home:
    by_id = {s.id: s for s in structures}
    devices: dict[str, Device] = {}
    for record in records:
        normalized = device(record, by_id)
        if normalized is not None:
            devices[normalized.id] = normalized
    return Home(account, by_id, devices)


def device(record: DeviceRecord, structures: Mapping[str, Structure]) -> Device | None:
    """The normalized device, or None for a type roost does not model."""
    kind = record.type.removeprefix(TYPE)
    common = _common(record, structures)
    if kind == "THERMOSTAT":
        return _thermostat(record, common)
    if kind == "DOORBELL":
        return Doorbell(**common)
    if kind in ("CAMERA", "DISPLAY"):
        return Camera(**common)
    return None


def device_events(
    event: SdmEvent,
    account: str,
    device: Device | None,
    *,
    at: datetime,
    catch_up: bool = False,
) -> list[tuple[str, DeviceEvent]]:
    """The typed events of a `resourceUpdate.events`, each with its dedupe key (the same
    event comes again in the thread's later messages: report each key once)."""
    device_id = short_id(event.resource or "")
    context = Context(catch_up=catch_up)
    found: list[tuple[str, DeviceEvent]] = []
    for item in event.events:
        cls = EVENT_TYPES.get(item.kind)
        if cls is None:
            continue
        typed = cls(
            id=new_id(),
            at=at,
            account=account,
            structure=device.structure_id if device is not None else None,
            device=device_id,
            context=context,
            started_at=event.timestamp,
            vendor_id=item.event_id or item.session_id,
        )
        found.append((item.key, typed))
    return found


def eco_on(traits: Mapping[str, Mapping[str, Any]]) -> bool:
    return _trait(traits, TRAIT + "ThermostatEco").get("mode") == "MANUAL_ECO"


def base_mode(traits: Mapping[str, Mapping[str, Any]]) -> str | None:
    """`ThermostatMode.mode` (HEAT, COOL, HEATCOOL, OFF): the mode under eco, if eco is on."""
    mode = _trait(traits, TRAIT + "ThermostatMode").get("mode")
    return mode if isinstance(mode, str) else None


def available_modes(traits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    modes = _trait(traits, TRAIT + "ThermostatMode").get("availableModes")
    return [m for m in modes if isinstance(m, str)] if isinstance(modes, list) else []


def _common(record: DeviceRecord, structures: Mapping[str, Structure]) -> dict[str, Any]:
    device_id = short_id(record.name)
    parent, room = record.parents[0] if record.parents else ("", "")
    sid = structure_id_of(parent)
    if sid is None:
        sid = next(iter(structures)) if len(structures) == 1 else UNKNOWN_STRUCTURE
    info = _trait(record.traits, TRAIT + "Info")
    connectivity = _trait(record.traits, TRAIT + "Connectivity")
    return {
        "id": device_id,
        "name": _text(info.get("customName")) or room or device_id,
        "structure_id": sid,
        "room": room or None,
        "online": connectivity.get("status", "ONLINE") != "OFFLINE",
    }


def _thermostat(record: DeviceRecord, common: dict[str, Any]) -> Thermostat:
    traits = record.traits
    where = f"thermostat {record.name}"
    raw_mode = base_mode(traits) or "OFF"
    if raw_mode not in MODES:
        raise PayloadError(f"{where}: unknown ThermostatMode {raw_mode!r}")
    eco = _trait(traits, TRAIT + "ThermostatEco")
    eco_range = _pair(eco, where)
    setpoint = _trait(traits, TRAIT + "ThermostatTemperatureSetpoint")
    mode = ThermostatMode.ECO if eco_on(traits) else MODES[raw_mode]
    heat, cool = _active_setpoints(mode, setpoint, eco_range, where)
    modes = available_modes(traits)
    fan = traits.get(TRAIT + "Fan")
    fan_on = fan is not None and fan.get("timerMode") == "ON"
    hvac = _trait(traits, TRAIT + "ThermostatHvac").get("status", "OFF")
    return Thermostat(
        **common,
        mode=mode,
        heat_setpoint_c=heat,
        cool_setpoint_c=cool,
        ambient_c=_number(
            _trait(traits, TRAIT + "Temperature"), "ambientTemperatureCelsius", where
        ),
        humidity=_number(_trait(traits, TRAIT + "Humidity"), "ambientHumidityPercent", where),
        hvac=_HVAC.get(str(hvac), HvacActivity.IDLE),
        can_heat="HEAT" in modes,
        can_cool="COOL" in modes,
        has_fan=fan is not None,
        fan_timer_active=fan_on,
        fan_timer_until=parse_time(fan.get("timerTimeout")) if fan is not None and fan_on else None,
        allowed_range_c=ALLOWED_RANGE_C,
        eco_range_c=eco_range,
    )


def _active_setpoints(
    mode: ThermostatMode,
    setpoint: Mapping[str, Any],
    eco_range: tuple[float, float] | None,
    where: str,
) -> tuple[float | None, float | None]:
    heat = _number(setpoint, "heatCelsius", where)
    cool = _number(setpoint, "coolCelsius", where)
    if mode is ThermostatMode.HEAT:
        return heat, None
    if mode is ThermostatMode.COOL:
        return None, cool
    if mode is ThermostatMode.HEAT_COOL:
        return heat, cool
    if mode is ThermostatMode.ECO:
        return eco_range if eco_range is not None else (None, None)
    return None, None


def _pair(eco: Mapping[str, Any], where: str) -> tuple[float, float] | None:
    low, high = _number(eco, "heatCelsius", where), _number(eco, "coolCelsius", where)
    return None if low is None or high is None else (low, high)


def _trait(traits: Any, name: str) -> Mapping[str, Any]:
    value = traits.get(name) if isinstance(traits, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _number(values: Mapping[str, Any], key: str, where: str) -> float | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{where}: {key} is not a number: {value!r}")
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
