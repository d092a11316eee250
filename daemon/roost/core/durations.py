"""Durations as people write them: "90s", "10m", "1h30m", "2d", or a number of seconds."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION_S = 3650 * 86400.0  # ten years: any hold, cooldown or delay a home needs


def parse_duration(value: str | float | int | None) -> float:
    """Seconds. Raises ValueError with the accepted forms for anything else."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return _bounded(float(value), value)
    text = value.strip().replace(" ", "")
    parts = _PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {value!r} (write e.g. '30s', '10m', '1h30m', '2d')")
    return _bounded(sum(float(n) * _UNIT[u] for n, u in parts), value)


def _bounded(seconds: float, value: object) -> float:
    # NaN and infinity fail too; a due time this far ahead would be past year 9999
    if not 0 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"not a duration roost can wait: {value!r} (at most 3650 days)")
    return seconds


_RATE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(.+?)\s*$")


def parse_rate(value: str | tuple[int, str | float] | None) -> tuple[int, float] | None:
    """ "3/1h", "3 per 10m" or (3, "1h") → (3, 3600.0): at most 3 in any hour."""
    if value is None:
        return None
    if isinstance(value, tuple):
        count, window = value
    else:
        match = _RATE.match(str(value))
        if match is None:
            raise ValueError(f"not a rate: {value!r} (write e.g. '3/1h' or '5 per 10m')")
        count, window = int(match.group(1)), match.group(2)
    seconds = parse_duration(window)
    if int(count) < 1 or seconds <= 0:
        raise ValueError(f"a rate needs at least 1 per a positive window: {value!r}")
    return int(count), seconds


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_time_of_day(value: str) -> int:
    """ "07:30" → minutes after midnight."""
    match = _CLOCK.match(value.strip())
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"not a time of day: {value!r} (write e.g. '07:30' or '22:00')")
    return int(match.group(1)) * 60 + int(match.group(2))
