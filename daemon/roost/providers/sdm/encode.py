"""Vendor-free actions → SDM `executeCommand` bodies (PROTOCOLS.md §3.2).

The encoder reads the device's raw traits, because SDM's preconditions are about them: a
setpoint command must match `ThermostatMode.mode` (SetHeat in HEAT, SetCool in COOL,
SetRange in HEATCOOL), so a heat or cool change in HEATCOOL becomes a SetRange that keeps
the other setpoint; a mode must be one of `availableModes`; the fan needs the Fan trait.
What the encoder cannot know for sure is left to SDM to refuse: setpoints while eco is on
are sent for the mode under eco, and SDM answers FAILED_PRECONDITION, which maps to a typed
failure (one authority, no second guess that could drift from the vendor's).
"""

from __future__ import annotations

from collections.abc import Mapping
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
from roost.core.model import ThermostatMode
from roost.providers import encoding
from roost.providers.sdm.normalize import TRAIT, available_modes, base_mode, eco_on

COMMAND = "sdm.devices.commands."
MAX_FAN_MINUTES = 720  # Fan.SetTimer duration up to 43200 s [M]

Body = dict[str, Any]
Traits = Mapping[str, Mapping[str, Any]]

_MODE_TO_SDM = {
    ThermostatMode.HEAT: "HEAT",
    ThermostatMode.COOL: "COOL",
    ThermostatMode.HEAT_COOL: "HEATCOOL",
    ThermostatMode.OFF: "OFF",
}


def encode(action: Action, device_id: str, traits: Traits) -> Body:
    """The `executeCommand` body for one action on one device."""
    if isinstance(action, SetPresence):
        raise EncodeError("Google SDM has no presence (home/away) control")
    if TRAIT + "ThermostatMode" not in traits:
        raise EncodeError(f"{action.describe()} applies to a thermostat, not {device_id}")
    if isinstance(action, SetMode):
        return _mode(action.mode, device_id, traits)
    if isinstance(action, SetEco):
        return _command("ThermostatEco.SetMode", mode="MANUAL_ECO" if action.on else "OFF")
    if isinstance(action, SetHeat | SetCool | SetRange):
        return _setpoint(action, device_id, traits)
    if isinstance(action, SetFanTimer):
        return _fan(action, device_id, traits)
    raise EncodeError(f"{action.describe()} is not supported by Google SDM")


def _command(name: str, **params: Any) -> Body:
    return {"command": COMMAND + name, "params": params}


def _mode(mode: ThermostatMode, device_id: str, traits: Traits) -> Body:
    if mode is ThermostatMode.ECO:
        return _command("ThermostatEco.SetMode", mode="MANUAL_ECO")
    wanted = _MODE_TO_SDM[mode]
    if wanted not in available_modes(traits):
        raise EncodeError(f"thermostat {device_id} cannot run in {mode} mode")
    if eco_on(traits) and base_mode(traits) == wanted:
        # Leaving eco returns to the mode under it; SetMode to that same mode might not.
        return _command("ThermostatEco.SetMode", mode="OFF")
    return _command("ThermostatMode.SetMode", mode=wanted)


def _setpoint(action: SetHeat | SetCool | SetRange, device_id: str, traits: Traits) -> Body:
    mode = base_mode(traits)
    held = traits.get(TRAIT + "ThermostatTemperatureSetpoint", {})
    if isinstance(action, SetHeat) and mode == "HEAT":
        return _command("ThermostatTemperatureSetpoint.SetHeat", heatCelsius=action.celsius)
    if isinstance(action, SetCool) and mode == "COOL":
        return _command("ThermostatTemperatureSetpoint.SetCool", coolCelsius=action.celsius)
    if mode == "HEATCOOL":
        heat, cool = held.get("heatCelsius"), held.get("coolCelsius")
        if isinstance(action, SetRange):
            heat, cool = action.heat_celsius, action.cool_celsius
        elif isinstance(action, SetHeat):
            heat = action.celsius
        else:
            cool = action.celsius
        if not isinstance(heat, int | float) or not isinstance(cool, int | float):
            raise EncodeError(f"thermostat {device_id}: the other setpoint of the range is unknown")
        return _command(
            "ThermostatTemperatureSetpoint.SetRange", heatCelsius=heat, coolCelsius=cool
        )
    shown = mode or "an unknown mode"
    raise EncodeError(f"{action.describe()} does not apply to thermostat {device_id} in {shown}")


def _fan(action: SetFanTimer, device_id: str, traits: Traits) -> Body:
    has_fan = TRAIT + "Fan" in traits
    minutes = encoding.fan_minutes(action, has_fan, device_id, MAX_FAN_MINUTES)
    if minutes == 0:
        return _command("Fan.SetTimer", timerMode="OFF")
    return _command("Fan.SetTimer", timerMode="ON", duration=f"{minutes * 60}s")
