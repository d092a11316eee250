"""A restart inside the hour that the fall-back repeats neither repeats a fixed-time cron
job nor loses an hourly one: the timers kept across the restart fire exactly as an
uninterrupted run does (New York, 2026-11-01, 02:00 EDT → 01:00 EST). The DST rules
alone are in test_triggers, restarts alone in test_durable_timers; this is both at once
(an audit of hostile input checked it and found it holding)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from roost.core.timers import MemoryTimerPersistence
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

NEW_YORK = {**HOME, "time_zone": "America/New_York"}
START, END = datetime(2026, 11, 1, 4, 0, tzinfo=UTC), datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
# 05:45Z is 01:45 EDT (the first 01:xx); 06:16Z and 06:31Z are 01:16 and 01:31 EST (the second)
RESTARTS = [datetime(2026, 11, 1, h, m, tzinfo=UTC) for h, m in ((5, 45), (6, 16), (6, 31))]


async def _fired(tmp_path: Path, stops: list[datetime]) -> list[str]:
    persistence, fired = MemoryTimerPersistence(), []
    bounds = [START, *stops, END]
    for start, until in itertools.pairwise(bounds):
        if start is not START:
            start += timedelta(seconds=30)  # down for 30 s: a timer due then fires late, once
        async with simulate(tmp_path, NEW_YORK, start=start, persistence=persistence) as home:
            await home.advance_to(until)
            zone = home.engine.services.zone
            fired += [
                t.at.astimezone(zone).strftime("%H:%M %Z")
                for t in home.traces("scheduled")
                if t.result.value == "ran"
            ]
    return fired


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("30 1 * * *", ["01:30 EDT"]),  # a fixed time: once
        ("0 * * * *", ["01:00 EDT", "01:00 EST", "02:00 EST", "03:00 EST"]),  # every hour
        ("15 1-2 * * *", ["01:15 EDT", "02:15 EST"]),
    ],
)
async def test_a_restart_in_the_repeated_hour_keeps_the_schedule(
    tmp_path: Path, cron: str, expected: list[str]
) -> None:
    rule_file(
        tmp_path,
        "r.toml",
        f"""
        [[rule]]
        name = "scheduled"
        on = {{ cron = "{cron}" }}
        do = [{{ action = "notify", title = "tick" }}]
        """,
    )
    assert await _fired(tmp_path, []) == expected
    for restart in RESTARTS:
        assert await _fired(tmp_path, [restart]) == expected, restart
