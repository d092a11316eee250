"""When a cron schedule fires next, in the home's time zone, correct across DST.

croniter holds wall-clock time when its base carries a real zone, so the base is always the
last fire time converted to the zone. Two DST facts shape the rest:

- spring forward: a time that does not exist that day (02:30 when clocks jump 02:00→03:00)
  fires once, when the clocks jump (croniter moves it forward);
- fall back: a wall-clock time that happens twice (01:30 when clocks go 02:00→01:00) fires
  once for a job with a fixed hour. A job whose hour field is `*` or `*/n` runs in both
  repeated hours, because an hour of real time did pass.

Only the classic five fields are accepted: croniter reads a sixth field as *seconds last*,
the opposite of Quartz and APScheduler, which surprises anyone who writes one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

_MAX_SKIPS = 4


class ScheduleError(ValueError):
    pass


def check_cron(expr: str) -> str:
    """The expression, normalised, or ScheduleError saying what is wrong with it."""
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron {expr!r} has {len(fields)} fields; write the classic five: "
            "minute hour day-of-month month day-of-week (e.g. '30 7 * * mon-fri')"
        )
    normalised = " ".join(fields)
    from croniter import croniter  # with python-dateutil ~1.4 MiB: only for cron rules

    if not croniter.is_valid(normalised):
        raise ScheduleError(f"cron {expr!r} is not a valid cron expression")
    return normalised


def next_cron(expr: str, after: datetime, zone: tzinfo) -> datetime:
    """The first fire time strictly after `after` (UTC in, UTC out)."""
    from croniter import croniter

    base = after.astimezone(zone)
    it = croniter(expr, base)
    elapsed_hours = _hour_is_repeating(expr)
    for _ in range(_MAX_SKIPS):
        candidate: datetime = it.get_next(datetime)
        if elapsed_hours or not _second_pass(candidate):
            return candidate.astimezone(UTC)
    raise ScheduleError(f"cron {expr!r} found no time after {after.isoformat()}")


def next_interval(start: datetime, every_s: float, now: datetime) -> datetime:
    """The next tick of a fixed interval counted from `start`, strictly after `now`."""
    if now < start:
        return start
    ticks = int((now - start).total_seconds() // every_s) + 1
    return start + timedelta(seconds=ticks * every_s)


def _hour_is_repeating(expr: str) -> bool:
    hour = expr.split()[1]
    return hour == "*" or hour.startswith("*/")


def _second_pass(local: datetime) -> bool:
    """Is this the second occurrence of an ambiguous wall-clock time (fall back)?"""
    if not local.fold:
        return False
    return local.replace(fold=0).utcoffset() != local.utcoffset()
