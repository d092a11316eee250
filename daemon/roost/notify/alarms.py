"""What counts as an alarm, for the paths that must never hold one back.

A smoke or CO level change (`smoke` / `co` events whose level differs from the last one)
is an alarm; so is any notification with `priority = "urgent"`. A rule run triggered by an
alarm passes cooldown, rate limit, debounce and run-mode queueing, and its notifications
pass the per-tag and per-rule limits: limits are for comfort, not for safety.
"""

from __future__ import annotations

from roost.core.events import CoAlarm, Event, SmokeAlarm
from roost.notify.notifier import Priority

_ALARMS = (SmokeAlarm, CoAlarm)  # a tuple: `A | B` would build a union on every call


def is_alarm(event: Event) -> bool:
    """A smoke or CO alarm that moved to a new level (a repeat of the same level is not)."""
    return isinstance(event, _ALARMS) and event.new != event.old


def is_alarm_notification(priority: Priority | str, event: Event | None) -> bool:
    return priority == Priority.URGENT or (event is not None and is_alarm(event))
