"""SDM structures and device records → the normalized home (PROTOCOLS.md §3.2).

Ids are the last segment of the resource name (`enterprises/p/devices/<id>`). A device's
room is its parent relation's display name, its structure the structure in that parent's
name. Eco is a separate trait in SDM (`ThermostatEco.mode = MANUAL_ECO`) while
`ThermostatMode.mode` keeps the mode eco returns to; normalized, eco *is* the mode, with the
eco range as the active setpoints. SDM has no presence, so structures are always `home`.
Unknown device types (a future one) are skipped, not fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from roost.core.events import Chime, Context, DeviceEvent, Motion, Person, Sound
from roost.core.ids import new_id
from roost.core.model import (
    Camera,
    Device,
    Doorbell,
    Home,
    HvacActivity,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.providers.readers import Fields, Problems, active_setpoints, eco_or, pair, parse_time
from roost.providers.sdm.messages import PayloadError, SdmEvent
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
SETPOINT_KEYS = ("heatCelsius", "coolCelsius", "heatCelsius", "coolCelsius")
_HVAC = {"HEATING": HvacActivity.HEATING, "COOLING": HvacActivity.COOLING, "OFF": HvacActivity.IDLE}
_ONLINE = {"ONLINE": True, "OFFLINE": False}
_ECO = {"MANUAL_ECO": True, "OFF": False}
_FAN = {"ON": True, "OFF": False}


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


def home(
    account: str,
    structures: Iterable[Structure],
    records: Iterable[DeviceRecord],
    problems: Problems | None = None,
    unusable: Callable[[PayloadError], None] | None = None,
) -> Home:
    """The home of the records. A record that cannot be normalized at all raises, or with
    `unusable` is handed to it and left out."""
    by_id = {s.id: s for s in structures}
    devices: dict[str, Device] = {}
    for record in records:
        try:
            normalized = device(record, by_id, problems)
        except PayloadError as exc:
            if unusable is None:
                raise
            unusable(exc)
            continue
        if normalized is not None:
            devices[normalized.id] = normalized
    return Home(account, by_id, devices)


def device(
    record: DeviceRecord, structures: Mapping[str, Structure], problems: Problems | None = None
) -> Device | None:
    """The normalized device, or None for a type roost does not model. Unreadable trait
    values are unknown (None) and noted in `problems`."""
    kind = record.type.removeprefix(TYPE)
    found = problems if problems is not None else Problems()
    traits = found.fields(record.traits, short_id(record.name))
    common = _common(record, structures, traits)
    if kind == "THERMOSTAT":
        return _thermostat(traits, common)
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


def _common(
    record: DeviceRecord, structures: Mapping[str, Structure], traits: Fields
) -> dict[str, Any]:
    device_id = short_id(record.name)
    parent, room = record.parents[0] if record.parents else ("", "")
    sid = structure_id_of(parent)
    if sid is None:
        sid = next(iter(structures)) if len(structures) == 1 else UNKNOWN_STRUCTURE
    info = traits.child(TRAIT + "Info")
    connectivity = traits.child(TRAIT + "Connectivity")
    return {
        "id": device_id,
        "name": info.text("customName") or room or device_id,
        "structure_id": sid,
        "room": room or None,
        "online": connectivity.enum("status", _ONLINE, default="ONLINE"),
    }


def _thermostat(traits: Fields, common: dict[str, Any]) -> Thermostat:
    base = traits.child(TRAIT + "ThermostatMode")
    eco = traits.child(TRAIT + "ThermostatEco")
    eco_range = pair(eco.celsius("heatCelsius"), eco.celsius("coolCelsius"))
    mode = eco_or(eco.enum("mode", _ECO, default="OFF"), lambda: base.enum("mode", MODES, "OFF"))
    setpoint = traits.child(TRAIT + "ThermostatTemperatureSetpoint")
    heat, cool = active_setpoints(setpoint, mode, SETPOINT_KEYS, eco_range)
    modes = _available_modes(base)
    fan = traits.child(TRAIT + "Fan")
    has_fan = traits.has(TRAIT + "Fan")
    fan_on = fan.enum("timerMode", _FAN, default="OFF") if has_fan else False
    return Thermostat(
        **common,
        mode=mode,
        heat_setpoint_c=heat,
        cool_setpoint_c=cool,
        ambient_c=traits.child(TRAIT + "Temperature").celsius("ambientTemperatureCelsius"),
        humidity=traits.child(TRAIT + "Humidity").percent("ambientHumidityPercent"),
        hvac=traits.child(TRAIT + "ThermostatHvac").enum("status", _HVAC, default="OFF"),
        can_heat=None if modes is None else "HEAT" in modes,
        can_cool=None if modes is None else "COOL" in modes,
        has_fan=has_fan,
        fan_timer_active=fan_on,
        fan_timer_until=parse_time(fan.raw("timerTimeout")) if fan_on else None,
        allowed_range_c=ALLOWED_RANGE_C,
        eco_range_c=eco_range,
    )


def _available_modes(base: Fields) -> list[str] | None:
    modes = base.raw("availableModes", [])
    if not isinstance(modes, list):
        base.bad("availableModes", "wrong type", modes)
        return None
    return [m for m in modes if isinstance(m, str)]


def _trait(traits: Any, name: str) -> Mapping[str, Any]:
    value = traits.get(name) if isinstance(traits, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
