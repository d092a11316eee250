"""What every vendor's encoder checks the same way before it builds a write. Each check
raises `EncodeError`: the action does not apply, and nothing is sent."""

from __future__ import annotations

from collections.abc import Mapping

from roost.core.commands import Action, SetCool, SetFanTimer, SetHeat, SetRange
from roost.core.errors import EncodeError
from roost.core.model import Device, Structure, Thermostat, ThermostatMode

SetpointFields = Mapping[tuple[type[Action], ThermostatMode], tuple[str, ...]]


def on_structure(action: Action, target: Structure | Device, kind: str = "structure") -> Structure:
    if not isinstance(target, Structure):
        raise EncodeError(f"{action.describe()} applies to a {kind}, not {target.id}")
    return target


def on_thermostat(
    action: Action, target: Structure | Device, kind: str = "thermostat"
) -> Thermostat:
    if not isinstance(target, Thermostat):
        raise EncodeError(f"{action.describe()} applies to a {kind}, not {target.id}")
    return target


def known_mode(target: Thermostat) -> ThermostatMode:
    if target.mode is None:
        raise EncodeError(f"thermostat {target.id}: its mode is unknown")
    return target.mode


def check_mode(mode: ThermostatMode, target: Thermostat) -> None:
    """The thermostat can heat (or cool) if `mode` needs it to."""
    needs_heat = mode in (ThermostatMode.HEAT, ThermostatMode.HEAT_COOL)
    needs_cool = mode in (ThermostatMode.COOL, ThermostatMode.HEAT_COOL)
    if (needs_heat and not target.can_heat) or (needs_cool and not target.can_cool):
        raise EncodeError(f"thermostat {target.id} cannot run in {mode} mode")


def setpoints(
    action: SetHeat | SetCool | SetRange, mode: ThermostatMode, fields: SetpointFields
) -> dict[str, float]:
    """The vendor's setpoint fields for `action` in `mode`, with the temperatures to write."""
    names = fields.get((type(action), mode))
    if names is None:
        raise EncodeError(f"{action.describe()} does not apply in {mode} mode")
    if isinstance(action, SetRange):
        values: tuple[float, ...] = (action.heat_celsius, action.cool_celsius)
    else:
        values = (action.celsius,)
    return dict(zip(names, values, strict=True))


def fan_minutes(action: SetFanTimer, has_fan: bool | None, device_id: str, most: int = 0) -> int:
    """The fan timer's minutes (0: stop it), at `most` minutes if the vendor has a limit."""
    if not has_fan:
        raise EncodeError(f"thermostat {device_id} has no fan")
    if action.minutes < 0 or (most and action.minutes > most):
        limit = f"0 to {most}" if most else "0 or more"
        raise EncodeError(f"fan timer minutes must be {limit}: {action.minutes}")
    return action.minutes
