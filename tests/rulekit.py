"""Helpers for the rule engine tests: rule files on disk, a small home."""

from __future__ import annotations

import textwrap
from pathlib import Path

HOME = {
    "structure": "House",
    "time_zone": "Europe/Berlin",
    "thermostats": {
        "Den": {"mode": "heat", "ambient_c": 20.0, "heat_setpoint_c": 20.0, "has_fan": True},
        "Bedroom": {"mode": "heat", "ambient_c": 19.0, "heat_setpoint_c": 19.0},
    },
    "alarms": {"Hallway": {}},
    "cameras": {"Front Door": {}},
}


def rule_file(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path
