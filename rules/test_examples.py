"""The example rules, tested with roost's own test harness (`roost.testing`).

Read these as documentation: each test builds a small home, plays what happens, moves a
virtual clock (nothing sleeps), and checks the commands and notifications the rules made.
Run them with `pytest rules/`.
"""

from pathlib import Path

import pytest

from roost.testing import simulate

RULES = Path(__file__).parent
HOME = {
    "structure": "Home",
    "time_zone": "Europe/London",
    "thermostats": {
        "Living Room": {"mode": "heat", "ambient_c": 20.0, "heat_setpoint_c": 21.0},
        "Bedroom": {"mode": "heat", "ambient_c": 19.0, "heat_setpoint_c": 19.0},
    },
    "alarms": {"Hallway": {}},
}

pytestmark = pytest.mark.anyio


async def test_everyone_leaves_and_comes_back():
    async with simulate(RULES, HOME) as home:
        await home.set("Home", presence="away")
        assert sorted(home.actions()) == ["Bedroom: eco on", "Living Room: eco on"]
        home.clear()
        await home.set("Home", presence="home")
        assert sorted(home.actions()) == ["Bedroom: eco off", "Living Room: eco off"]


async def test_carbon_monoxide_pushes_at_once_and_says_when_it_clears():
    async with simulate(RULES, HOME) as home:
        await home.set("Hallway", co="warning")
        await home.set("Hallway", co="emergency")
        await home.set("Hallway", co="ok")
        assert home.titles() == [
            "CO warning in the Hallway",
            "CO emergency in the Hallway",
            "CO cleared in the Hallway",
        ]
        assert home.notifications[0].priority == "urgent"


async def test_too_warm_once_per_crossing_after_five_minutes():
    async with simulate(RULES, HOME) as home:
        for reading in (25.0, 26.5, 27.0, 26.8):
            await home.set("Bedroom", ambient_c=reading)
            await home.advance("2m")
        assert home.titles() == ["Bedroom is 26.5 °C"]  # one push, not one per reading
        await home.set("Bedroom", ambient_c=24.5)  # cools down: re-armed
        await home.set("Bedroom", ambient_c=26.2)
        await home.advance("3m")  # not 5 minutes yet
        await home.set("Bedroom", ambient_c=25.5)  # dropped back: the hold is cancelled
        await home.advance("1h")
        assert len(home.titles()) == 1


async def test_night_setback_on_weeknights_only_when_someone_is_home():
    # Monday 5 January 2026, London time
    async with simulate(RULES, HOME, start="2026-01-05 22:00") as home:
        await home.advance("1h")
        assert sorted(home.actions()) == ["Bedroom: heat to 17 °C", "Living Room: heat to 17 °C"]
        home.clear()
        await home.advance_to("2026-01-09 23:00")  # Tuesday to Thursday: 3 more nights
        assert len(home.actions()) == 6
        home.clear()
        await home.advance_to("2026-01-10 23:00")  # Friday night: no setback
        assert home.actions() == []


async def test_why_did_a_rule_not_run():
    async with simulate(RULES, {**HOME, "presence": "away"}, start="2026-01-05 22:00") as home:
        await home.advance("1h")
        (trace,) = home.traces("night_setback")
        assert trace.reason == "condition not met"
        assert trace.conditions == [("structure Home.presence equals 'home' (is 'away')", False)]
