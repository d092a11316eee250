"""Vendor-free actions → Netatmo writes.

| action | Netatmo write |
|---|---|
| `SetHeat(c)` on a room | `setroomthermpoint` mode=manual, temp=c, endtime=now+duration |
| `SetEco(True)` | `setthermmode` mode=away (or hg, the account's `eco_mode`): home-wide |
| `SetEco(False)`, `SetMode(heat)` in eco | `setthermmode` mode=schedule |
| `SetMode(heat)` otherwise | `setroomthermpoint` mode=home (the room back to its schedule) |
| `SetMode(eco)` | as `SetEco(True)` |
| `SetMode(off)` | `setstate` with the room's therm_setpoint_mode=off |
| `SetPresence(away/home)` | `setpersonsaway` / `setpersonshome` (every known person); a home |
|  | without persons: `setthermmode` away / schedule |

Eco is a home-wide mode on Netatmo: there is no per-room away temperature. Netatmo Energy
only heats, so cooling, ranges and fans are refused here (`EncodeError`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from roost.core.commands import Action, SetEco, SetHeat, SetMode, SetPresence
from roost.core.errors import EncodeError
from roost.core.model import Device, Presence, Structure, ThermostatMode
from roost.providers import encoding

EcoMode = Literal["away", "hg"]


@dataclass(frozen=True, slots=True)
class Write:
    """One `POST api/<endpoint>` with a form or a JSON body."""

    endpoint: str
    form: dict[str, str | list[str]] | None = None
    json: dict[str, Any] | None = None
    home_id: str = ""


def encode(
    action: Action,
    target: Structure | Device,
    *,
    now: datetime,
    manual_duration: timedelta,
    eco_mode: EcoMode = "away",
    persons: Sequence[str] = (),
) -> Write:
    """The Netatmo write for one action on one target."""
    if isinstance(action, SetPresence):
        home = encoding.on_structure(action, target, "home")
        return _presence(action.presence, home.id, persons)
    target = encoding.on_thermostat(action, target, "room thermostat")
    home_id = target.structure_id
    if isinstance(action, SetEco) or (
        isinstance(action, SetMode) and action.mode is ThermostatMode.ECO
    ):
        on = action.on if isinstance(action, SetEco) else True
        return therm_mode(home_id, eco_mode if on else "schedule")
    if isinstance(action, SetHeat):
        return _manual(home_id, target.id, action.celsius, now + manual_duration)
    if isinstance(action, SetMode) and action.mode is ThermostatMode.HEAT:
        if target.mode is ThermostatMode.ECO:
            return therm_mode(home_id, "schedule")
        form: dict[str, str | list[str]] = {
            "home_id": home_id,
            "room_id": target.id,
            "mode": "home",
        }
        return Write("setroomthermpoint", form=form, home_id=home_id)
    if isinstance(action, SetMode) and action.mode is ThermostatMode.OFF:
        room = {"id": target.id, "therm_setpoint_mode": "off"}
        return Write("setstate", json={"home": {"id": home_id, "rooms": [room]}}, home_id=home_id)
    raise EncodeError(f"{action.describe()} is not supported by Netatmo Energy (heating only)")


def therm_mode(home_id: str, mode: str) -> Write:
    return Write("setthermmode", form={"home_id": home_id, "mode": mode}, home_id=home_id)


def _manual(home_id: str, room_id: str, celsius: float, until: datetime) -> Write:
    form: dict[str, str | list[str]] = {
        "home_id": home_id,
        "room_id": room_id,
        "mode": "manual",
        "temp": f"{celsius:g}",
        "endtime": str(int(until.timestamp())),
    }
    return Write("setroomthermpoint", form=form, home_id=home_id)


def _presence(presence: Presence, home_id: str, persons: Sequence[str]) -> Write:
    if not persons:
        return therm_mode(home_id, "away" if presence is Presence.AWAY else "schedule")
    if presence is Presence.AWAY:
        return Write("setpersonsaway", form={"home_id": home_id}, home_id=home_id)
    form: dict[str, str | list[str]] = {"home_id": home_id, "person_ids[]": list(persons)}
    return Write("setpersonshome", form=form, home_id=home_id)
