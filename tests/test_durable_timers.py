"""Pending holds, schedules, cooldowns and rate windows as plain records: what survives a
restart, and the recovery policy for timers that fell due while the daemon was down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roost.core.timers import MemoryTimerPersistence, TimerRecord
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

RULES = """
[[rule]]
name = "eco when away"
on = { event = "presence", to = "away", hold = "10m" }
do = [{ action = "notify", title = "eco" }]

[[rule]]
name = "morning"
on = { cron = "0 7 * * *" }
do = [{ action = "notify", title = "morning" }]

[[rule]]
name = "porch"
on = { event = "motion" }
cooldown = "1h"
rate = "2/1d"
do = [{ action = "notify", title = "porch" }]
"""


def saved(persistence: MemoryTimerPersistence) -> list[dict[str, object]]:
    """The records as the store would keep them: JSON and back."""
    return [json.loads(json.dumps(r.to_json())) for r in persistence.load_all()]


@pytest.mark.parametrize(
    ("restart_at", "expected", "result"),
    [
        ("2026-01-05 12:13", ["eco"], "ran"),  # 3 minutes late: within the grace, fires once
        ("2026-01-05 13:00", [], "missed"),  # 50 minutes late: reported as missed
    ],
)
async def test_a_hold_that_fell_due_while_down(
    tmp_path: Path, restart_at: str, expected: list[str], result: str
) -> None:
    rule_file(tmp_path, "r.toml", RULES)
    persistence = MemoryTimerPersistence()
    async with simulate(tmp_path, HOME, start="2026-01-05 12:00", persistence=persistence) as home:
        await home.set("House", presence="away")
        await home.advance("5m")
    records = saved(persistence)
    assert {r["kind"] for r in records} == {"hold", "cron"}
    restored = MemoryTimerPersistence()
    for record in records:
        restored.save(TimerRecord.from_json(record))
    async with simulate(tmp_path, HOME, start=restart_at, persistence=restored) as home:
        assert home.titles() == expected
        trace = home.traces("eco when away")[-1]
        assert trace.result == result
        if result == "ran":
            assert "late: fell due while roost was down" in trace.trigger
        await home.advance("1h")
        assert home.titles() == expected  # once, not again


async def test_a_cron_time_missed_while_down_does_not_fire_twice(tmp_path: Path) -> None:
    rule_file(tmp_path, "r.toml", RULES)
    persistence = MemoryTimerPersistence()
    async with simulate(tmp_path, HOME, start="2026-01-05 06:00", persistence=persistence):
        pass
    async with simulate(tmp_path, HOME, start="2026-01-05 07:02", persistence=persistence) as home:
        assert home.titles() == ["morning"]  # 2 minutes late: once
        await home.advance("23h")  # to 06:02 the next day
        assert home.titles() == ["morning"]
    async with simulate(tmp_path, HOME, start="2026-01-06 09:00", persistence=persistence) as home:
        assert home.titles() == []
        assert home.traces("morning")[-1].result == "missed"
        await home.advance("22h")
        assert home.titles() == ["morning"]


async def test_cooldowns_and_rate_windows_survive_a_restart(tmp_path: Path) -> None:
    rule_file(tmp_path, "r.toml", RULES)
    async with simulate(tmp_path, HOME) as home:
        await home.motion("Front Door")
        await home.advance("2h")
        await home.motion("Front Door")
        state = json.loads(json.dumps(home.engine.export_state()))
    assert state["porch"]["last_run"] is not None
    assert len(state["porch"]["runs"]) == 2
    async with simulate(tmp_path, HOME, start="2026-01-05 14:30") as home:
        home.engine.import_state(state)
        await home.motion("Front Door")
        assert home.traces("porch")[-1].reason.startswith("cooldown")
        await home.advance("1h")
        await home.motion("Front Door")
        assert home.traces("porch")[-1].reason.startswith("rate limit")
        assert home.titles() == []
