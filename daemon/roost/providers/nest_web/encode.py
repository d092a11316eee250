"""Vendor-free actions → Nest web puts: bucket keys and the fields to merge into them.

One action may touch two buckets: leaving eco for a mode clears `device.<serial>`'s
`eco.mode` and sets `shared.<serial>`'s `target_temperature_type`, in one put (as
homebridge-nest does). Setpoints go to `shared.`, eco and the fan timer to `device.`,
presence to `structure.`. While in eco the setpoint fields follow the mode eco returns to
(`target_temperature_type`, passed in as `base_mode`).
"""

from __future__ import annotations

from datetime import datetime
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

PutObject = tuple[str, dict[str, Any]]

ECO_ON, ECO_OFF = "manual-eco", "schedule"
TARGET_TYPE = {
    ThermostatMode.HEAT: "heat",
    ThermostatMode.COOL: "cool",
    ThermostatMode.HEAT_COOL: "range",
    ThermostatMode.OFF: "off",
}


def encode(
    action: Action,
    target: Structure | Device,
    *,
    base_mode: ThermostatMode | None,
    now: datetime,
) -> list[PutObject]:
    """The bucket writes for one action on one target."""
    if isinstance(action, SetPresence):
        structure = encoding.on_structure(action, target)
        away = action.presence is Presence.AWAY
        fields = {"away": away, "away_timestamp": int(now.timestamp()), "away_setter": 0}
        return [(f"structure.{structure.id}", fields)]
    target = encoding.on_thermostat(action, target)
    if isinstance(action, SetEco):
        return [_eco(target, action.on)]
    if isinstance(action, SetMode):
        return _mode(target, action.mode)
    if isinstance(action, SetHeat | SetCool | SetRange):
        return [(f"shared.{target.id}", _setpoints(action, target, base_mode))]
    if isinstance(action, SetFanTimer):
        return [(f"device.{target.id}", _fan(action, target, now))]
    raise EncodeError(f"{action.describe()} is not supported by the Nest web API")


def _eco(target: Thermostat, on: bool) -> PutObject:
    return f"device.{target.id}", {"eco": {"mode": ECO_ON if on else ECO_OFF}}


def _mode(target: Thermostat, mode: ThermostatMode) -> list[PutObject]:
    if mode is ThermostatMode.ECO:
        return [_eco(target, True)]
    encoding.check_mode(mode, target)
    writes = [_eco(target, False)] if target.mode is ThermostatMode.ECO else []
    writes.append((f"shared.{target.id}", {"target_temperature_type": TARGET_TYPE[mode]}))
    return writes


def _setpoints(
    action: SetHeat | SetCool | SetRange, target: Thermostat, base_mode: ThermostatMode | None
) -> dict[str, Any]:
    mode = encoding.known_mode(target)
    if mode is ThermostatMode.ECO:
        mode = base_mode or (ThermostatMode.HEAT if target.can_heat else ThermostatMode.COOL)
    return encoding.setpoints(action, mode, _SETPOINT_FIELDS)


_SETPOINT_FIELDS: encoding.SetpointFields = {
    (SetHeat, ThermostatMode.HEAT): ("target_temperature",),
    (SetHeat, ThermostatMode.HEAT_COOL): ("target_temperature_low",),
    (SetCool, ThermostatMode.COOL): ("target_temperature",),
    (SetCool, ThermostatMode.HEAT_COOL): ("target_temperature_high",),
    (SetRange, ThermostatMode.HEAT_COOL): ("target_temperature_low", "target_temperature_high"),
}


def _fan(action: SetFanTimer, target: Thermostat, now: datetime) -> dict[str, Any]:
    """`fan_timer_timeout` is the unix second the fan stops; 0 stops it now."""
    minutes = encoding.fan_minutes(action, target.has_fan, target.id)
    return {"fan_timer_timeout": int(now.timestamp()) + minutes * 60 if minutes else 0}
