"""Sunrise and sunset, as triggers and conditions, from the home's latitude/longitude.

    sun("sunset", offset="-30m")                    # a trigger: 30 minutes before sunset
    sun_between("sunset", "sunrise", after_offset="30m")   # a condition: dark enough

The times come from astral (the NOAA solar equations), computed for the local date in the
home's zone, so a sunset trigger follows the clock across a DST change. Where the sun
does not rise or set that day (polar summer or night) that day is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from roost.core.durations import parse_duration
from roost.rules.triggers import Cron, RuleDefinitionError

SUN_EVENTS = ("sunrise", "sunset", "dawn", "dusk", "noon")
NO_SUN_DAYS = 400  # searched ahead before giving up (polar night)


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


# The locations of the home: "" is the default; other keys are structure names or ids.
Locations = Mapping[str, Location]


def location_for(locations: Locations, structure: str | None) -> Location | None:
    if structure is not None:
        for key, where in locations.items():
            if key.casefold() == structure.casefold():
                return where
    return locations.get("")


def sun_time(which: str, day: date, where: Location, zone: tzinfo) -> datetime | None:
    """The time of `which` on the local `day`; None if it does not happen that day."""
    from astral import Observer  # ~0.3 MiB, for sun rules only
    from astral import sun as astral_sun

    observer = Observer(where.latitude, where.longitude)
    try:
        if which == "noon":
            return astral_sun.noon(observer, date=day, tzinfo=zone)
        found: datetime = getattr(astral_sun, which)(observer, date=day, tzinfo=zone)
        return found
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Sun(Cron):
    """A trigger at sunrise/sunset/dawn/dusk/noon plus an offset (negative: before)."""

    event: str = "sunset"
    offset_s: float = 0.0
    structure: str | None = field(default=None)

    def describe(self) -> str:
        if not self.offset_s:
            return self.event
        sign = "+" if self.offset_s > 0 else "-"
        return f"{self.event} {sign}{abs(self.offset_s) / 60:g}m"

    def next_after(self, after: datetime, where: Location, zone: tzinfo) -> datetime | None:
        """The first time strictly after `after`, or None if the sun never does it."""
        day = after.astimezone(zone).date() - timedelta(days=1)
        for _ in range(NO_SUN_DAYS):
            found = sun_time(self.event, day, where, zone)
            if found is not None:
                due = found + timedelta(seconds=self.offset_s)
                if due > after:
                    return due
            day += timedelta(days=1)
        return None


def sun(event: str, *, offset: str | float = 0, structure: str | None = None) -> Sun:
    """`sun("sunset", offset="-30m")`: a trigger at sunset minus 30 minutes."""
    _check_event(event)
    return Sun(f"@{event}", event, _offset(offset), structure)


def _check_event(event: str) -> None:
    if event not in SUN_EVENTS:
        raise RuleDefinitionError(
            f"unknown sun event {event!r}; use one of: {', '.join(SUN_EVENTS)}"
        )


def _offset(value: str | float) -> float:
    """'-30m' → -1800.0; a number is seconds."""
    try:
        if isinstance(value, str) and value.strip().startswith("-"):
            return -parse_duration(value.strip()[1:])
        return parse_duration(value.strip().lstrip("+") if isinstance(value, str) else value)
    except ValueError as exc:
        raise RuleDefinitionError(f"offset: {exc}", "offset") from None


@dataclass(frozen=True)
class SunWindow:
    """A condition: local time is between two sun times (may span midnight)."""

    after: str
    before: str
    after_offset_s: float = 0.0
    before_offset_s: float = 0.0
    structure: str | None = None

    def check(self, event: Any, home: Any, results: list[tuple[str, bool]] | None = None) -> bool:
        now = home.local_now()
        start = home.sun(self.after, now.date(), self.structure)
        end = home.sun(self.before, now.date(), self.structure)
        if start is None or end is None:
            ok = False
            shown = "no sun times (location not set, or polar day/night)"
        else:
            start += timedelta(seconds=self.after_offset_s)
            end += timedelta(seconds=self.before_offset_s)
            ok = start <= now < end if start <= end else (now >= start or now < end)
            shown = f"{start:%H:%M}–{end:%H:%M}, it is {now:%H:%M}"
        if results is not None:
            results.append((f"{self.describe()} ({shown})", ok))
        return ok

    def describe(self) -> str:
        return f"between {self.after} and {self.before}"


def sun_between(
    after: str,
    before: str,
    *,
    after_offset: str | float = 0,
    before_offset: str | float = 0,
    structure: str | None = None,
) -> SunWindow:
    """`sun_between("sunset", "sunrise")`: it is dark (local time, the home's location)."""
    _check_event(after)
    _check_event(before)
    return SunWindow(after, before, _offset(after_offset), _offset(before_offset), structure)


def next_due(trigger: Cron, after: datetime, zone: tzinfo, locations: Locations) -> datetime:
    """When a cron or sun trigger is next due (the engine's one entry point)."""
    from roost.rules.schedule import next_cron

    if not isinstance(trigger, Sun):
        return next_cron(trigger.expr, after, zone)
    where = location_for(locations, trigger.structure)
    due = trigger.next_after(after, where, zone) if where is not None else None
    # No location, or no such sun event for a year: park the timer far ahead (the rule is
    # reported by `roost check`), rather than fire at a made-up time.
    return due if due is not None else after + timedelta(days=NO_SUN_DAYS)


__all__ = ["Location", "Sun", "SunWindow", "location_for", "next_due", "sun", "sun_between"]
