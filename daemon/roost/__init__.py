"""roost: a rules daemon for smart homes that live in vendor clouds."""

__version__ = "0.1.0"

from roost.conditions import (
    all_of,
    any_of,
    device_state,
    not_,
    presence,
    structure_state,
    time_between,
    weekday,
)
from roost.rules import cron, every, rule, startup, when

__all__ = [
    "all_of",
    "any_of",
    "cron",
    "device_state",
    "every",
    "not_",
    "presence",
    "rule",
    "startup",
    "structure_state",
    "time_between",
    "weekday",
    "when",
]
