"""Vendor-free actions → Works with Nest writes: a data location and a JSON body.

WWN writes are `PUT <data location>` with only the changed fields. Which target field a
setpoint goes to depends on the thermostat's mode, so the encoder reads the normalized
target. Eco has no "previous mode" in the normalized model; the caller passes the raw
`previous_hvac_mode` (see `normalize.previous_mode`) so that eco off restores it.
Setpoints go out the way python-nest writes them: in the thermostat's display scale
(`temperature_scale`), rounded to 0.5 °C or to a whole °F.
"""

from __future__ import annotations

from typing import Any

from roost.core.commands import (
    Action,
    SetCool,
    SetEco,
    SetFanTimer,
    SetHeat,
    SetMode,
    SetPresence,
    SetRange,
)
from roost.core.errors import EncodeError
from roost.core.model import Device, Presence, Structure, Thermostat, ThermostatMode
from roost.providers import encoding

Write = tuple[str, dict[str, Any]]


def encode(
    action: Action,
    target: Structure | Thermostat | Device,
    *,
    previous_mode: ThermostatMode | None = None,
    scale: str = "C",
) -> Write:
    """The WWN data location and body for one action on one target.

    `previous_mode` is the mode the thermostat had before eco (WWN `previous_hvac_mode`);
    it is only used by `SetEco(False)`. `scale` is the thermostat's display scale.
    """
    if isinstance(action, SetPresence):
        away = "away" if action.presence is Presence.AWAY else "home"
        structure = encoding.on_structure(action, target)
        return f"/structures/{structure.id}", {"away": away}
    target = encoding.on_thermostat(action, target)
    body = _thermostat_body(action, target, previous_mode, scale)
    return f"/devices/thermostats/{target.id}", body


def _thermostat_body(
    action: Action, target: Thermostat, previous_mode: ThermostatMode | None, scale: str
) -> dict[str, Any]:
    if isinstance(action, SetMode):
        encoding.check_mode(action.mode, target)
        return {"hvac_mode": str(action.mode)}
    if isinstance(action, SetEco):
        return {"hvac_mode": str(_eco_mode(action.on, target, previous_mode))}
    if isinstance(action, SetHeat | SetCool | SetRange):
        return _setpoint_body(action, target, previous_mode, scale)
    if isinstance(action, SetFanTimer):
        return _fan_body(action, target)
    raise EncodeError(f"{action.describe()} is not supported by Works with Nest")


def _eco_mode(on: bool, target: Thermostat, previous_mode: ThermostatMode | None) -> ThermostatMode:
    if on:
        return ThermostatMode.ECO
    mode = encoding.known_mode(target)
    if mode is not ThermostatMode.ECO:
        return mode  # not in eco: keep the current mode (a harmless echo)
    return _mode_before_eco(target, previous_mode)


def _mode_before_eco(target: Thermostat, previous_mode: ThermostatMode | None) -> ThermostatMode:
    if previous_mode is not None and previous_mode is not ThermostatMode.ECO:
        return previous_mode
    return ThermostatMode.HEAT if target.can_heat else ThermostatMode.COOL


def _setpoint_body(
    action: SetHeat | SetCool | SetRange,
    target: Thermostat,
    previous_mode: ThermostatMode | None,
    scale: str,
) -> dict[str, Any]:
    # In eco WWN refuses setpoint changes with a 400; encode for the mode eco returns to,
    # so the vendor (not roost) gives the authoritative answer.
    mode = encoding.known_mode(target)
    if mode is ThermostatMode.ECO:
        mode = _mode_before_eco(target, previous_mode)
    fields = encoding.setpoints(action, mode, _SETPOINT_FIELDS)
    return {_in_scale(f, scale): _displayed(c, scale) for f, c in fields.items()}


def _in_scale(field: str, scale: str) -> str:
    return field.removesuffix("_c") + "_f" if scale == "F" else field


def _displayed(celsius: float, scale: str) -> float | int:
    """A setpoint as the thermostat shows it: whole °F, or °C to the half degree."""
    if scale == "F":
        return round(celsius * 9 / 5 + 32)
    return round(celsius * 2) / 2


_SETPOINT_FIELDS: encoding.SetpointFields = {
    (SetHeat, ThermostatMode.HEAT): ("target_temperature_c",),
    (SetHeat, ThermostatMode.HEAT_COOL): ("target_temperature_low_c",),
    (SetCool, ThermostatMode.COOL): ("target_temperature_c",),
    (SetCool, ThermostatMode.HEAT_COOL): ("target_temperature_high_c",),
    (SetRange, ThermostatMode.HEAT_COOL): ("target_temperature_low_c", "target_temperature_high_c"),
}


def _fan_body(action: SetFanTimer, target: Thermostat) -> dict[str, Any]:
    minutes = encoding.fan_minutes(action, target.has_fan, target.id)
    return (
        {"fan_timer_duration": minutes, "fan_timer_active": True}
        if minutes
        else {"fan_timer_active": False}
    )
