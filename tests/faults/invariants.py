"""The guard invariants, judged at the simulator: every write that reaches it is checked
against the house as the simulator holds it at that moment, in the vendor's own field
names, without asking roost. This is what the suite's "unsafe commands" counts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from roost.simulator.home import SimHome, SimThermostat, setpoints

HEAT_BAND = (7.0, 30.0)  # the house-wide safe band (roost's defaults, restated)
COOL_BAND = (18.0, 35.0)


@dataclass
class Judge:
    """Write observer for the simulator; `unsafe` lists each write that broke an invariant."""

    unsafe: list[str] = field(default_factory=list)
    writes: int = 0

    def __call__(self, home: SimHome, path: str, body: dict[str, Any]) -> None:
        self.writes += 1
        self.unsafe += [f"{path} {body}: {why}" for why in violations(home, path, body)]


def violations(home: SimHome, path: str, body: dict[str, Any]) -> list[str]:
    parts = path.strip("/").split("/")
    if "structures" in parts:
        structure = parts[parts.index("structures") + 1]
        if in_alarm(home, structure) and body.get("away") == "home":
            return ["home presence (ends eco) during an alarm"]
        return []
    if "thermostats" not in parts:
        return []
    t = home.thermostat(parts[parts.index("thermostats") + 1])
    heat, cool = written(t, body)
    found = [f"heat {v} outside the safe band" for v in heat if not _within(v, HEAT_BAND)]
    found += [f"cool {v} outside the safe band" for v in cool if not _within(v, COOL_BAND)]
    if in_alarm(home, t.structure_id):
        found += starts_air(t, body, heat, cool)
    return found


def in_alarm(home: SimHome, structure: str) -> bool:
    return any(
        a.structure_id == structure and (a.smoke != "ok" or a.co != "ok")
        for a in home.alarms.values()
    )


def written(t: SimThermostat, body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The heat and cool setpoints a write sets (a single target follows the mode)."""
    mode = t.mode if t.mode != "eco" else (t.previous_mode or "heat")
    celsius = {k: v for k, v in body.items() if k.startswith("target_temperature")}
    for key, value in list(celsius.items()):  # a write in the display scale (°F)
        if key.endswith("_f"):
            celsius[key[:-1] + "c"] = (value - 32) * 5 / 9 if _finite(value) else value
    heat = [celsius[k] for k in ("target_temperature_low_c",) if k in celsius]
    cool = [celsius[k] for k in ("target_temperature_high_c",) if k in celsius]
    if "target_temperature_c" in celsius:
        (cool if mode == "cool" else heat).append(celsius["target_temperature_c"])
    return heat, cool


def starts_air(
    t: SimThermostat, body: dict[str, Any], heat: list[Any], cool: list[Any]
) -> list[str]:
    found = []
    if body.get("fan_timer_active") is True:
        found.append("fan started during an alarm")
    mode = body.get("hvac_mode")
    if mode is not None and mode not in ("off", t.mode) and not (mode == "eco" and t.mode != "off"):
        found.append(f"mode {t.mode} → {mode} during an alarm")
    held_heat, held_cool = setpoints(t)
    if any(not _finite(held_heat) or not _finite(v) or v > held_heat for v in heat):
        found.append("heat raised during an alarm")
    if any(not _finite(held_cool) or not _finite(v) or v < held_cool for v in cool):
        found.append("cool lowered during an alarm")
    return found


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _within(value: Any, band: tuple[float, float]) -> bool:
    return _finite(value) and band[0] <= value <= band[1]
