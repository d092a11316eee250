"""Triggers through the public rule API, Python and TOML: filters, crossings, holds,
cron across DST, intervals, startup, several triggers per rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.engine.loader import load_directory
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio


async def test_filters_one_of_from_to_and_any_change(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("co", from_="ok", to=["warning", "emergency"]))
        async def co_rises(event, home):
            await home.notify(f"rises {event.new}")

        @rule(on=when("hvac"))
        async def any_hvac_change(event, home):
            await home.notify(f"hvac {event.new}")
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.set("Hallway", co="warning")
        await home.set("Hallway", co="emergency")  # from warning: not "from ok"
        await home.set("Hallway", co="ok")
        await home.set("Hallway", co="emergency")
        await home.set("Den", hvac="heating")
        assert home.titles() == ["rises warning", "rises emergency", "hvac heating"]


@pytest.mark.parametrize(
    "files",
    [
        {
            "r.py": """
            from roost import rule, when

            @rule(on=when("temperature", device="Den", above=25, hysteresis=1))
            async def too_warm(event, home):
                await home.notify(f"warm {event.new}")
            """
        },
        {
            "r.toml": """
            [[rule]]
            name = "too warm"
            on = { event = "temperature", device = "Den", above = 25, hysteresis = 1 }
            do = [{ action = "notify", title = "warm {event.new}" }]
            """
        },
    ],
    ids=["python", "toml"],
)
async def test_a_threshold_fires_on_crossing_not_on_every_sample(
    tmp_path: Path, files: dict[str, str]
) -> None:
    for name, text in files.items():
        rule_file(tmp_path, name, text)
    async with simulate(tmp_path, HOME) as home:
        for value in (24.0, 25.5, 26.0, 27.0, 24.5, 25.6):  # stays above, dips within hysteresis
            await home.set("Den", ambient_c=value)
        assert home.titles() == ["warm 25.5"]
        for value in (23.9, 25.2):  # leaves by the hysteresis, then crosses again
            await home.set("Den", ambient_c=value)
        assert home.titles() == ["warm 25.5", "warm 25.2"]


async def test_a_threshold_below_and_a_value_already_inside_at_start(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("temperature", below=15))
        async def cold(event, home):
            await home.notify(f"cold {event.device} {event.new}")
        """,
    )
    house = {**HOME, "thermostats": {"Den": {"ambient_c": 14.0}, "Bedroom": {"ambient_c": 19.0}}}
    async with simulate(tmp_path, house) as home:
        await home.set("Den", ambient_c=13.0)  # was already below: no crossing
        await home.set("Bedroom", ambient_c=14.5)  # each device crosses on its own
        await home.set("Den", ambient_c=16.0)
        await home.set("Den", ambient_c=14.0)
        assert home.titles() == ["cold bedroom 14.5", "cold den 14.0"]


@pytest.mark.parametrize(
    "files",
    [
        {
            "r.py": """
            from roost import rule, when

            @rule(on=when("presence", to="away"), hold="10m")
            async def eco_after_10m(event, home):
                for thermostat in home.thermostats(structure=event.structure):
                    await thermostat.set_eco(True)
            """
        },
        {
            "r.toml": """
            [[rule]]
            name = "eco after 10m"
            on = { event = "presence", to = "away", hold = "10m" }
            do = [{ action = "thermostat.set_eco", target = "structure", on = true }]
            """
        },
    ],
    ids=["python", "toml"],
)
async def test_hold_fires_after_the_duration_and_is_cancelled_when_it_stops(
    tmp_path: Path, files: dict[str, str]
) -> None:
    for name, text in files.items():
        rule_file(tmp_path, name, text)
    async with simulate(tmp_path, HOME) as home:
        await home.set("House", presence="away")
        await home.advance("9m")
        await home.set("House", presence="home")  # back before the 10 minutes: cancelled
        await home.advance("30m")
        assert home.actions() == []
        rule = home.traces()[-1]
        assert rule.result == "skipped"
        assert "hold cancelled" in rule.reason

        await home.set("House", presence="away")
        await home.advance("9m59s")
        assert home.actions() == []
        await home.advance("1s")
        assert sorted(home.actions()) == ["Bedroom: eco on", "Den: eco on"]


async def test_hold_on_a_threshold_is_cancelled_by_dropping_back(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.toml",
        """
        [[rule]]
        name = "hot for 5 minutes"
        on = { event = "temperature", device = "Den", above = 26 }
        hold = "5m"
        do = [{ action = "notify", title = "hot {event.new}" }]
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.set("Den", ambient_c=27.0)
        await home.advance("2m")
        await home.set("Den", ambient_c=27.5)  # still above: the hold keeps running
        await home.advance("2m")
        await home.set("Den", ambient_c=25.0)  # dropped back: cancelled
        await home.advance("10m")
        assert home.titles() == []
        await home.set("Den", ambient_c=26.5)
        await home.advance("5m")
        assert home.titles() == ["hot 26.5"]


async def test_hold_ignores_events_about_other_things(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("attribute", attribute="humidity", to=60.0, hold="5m"))
        async def humid(event, home):
            await home.notify("humid")
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.set("Den", humidity=60.0)
        await home.advance("1m")
        await home.set("Den", hvac="heating")  # another attribute: not a cancellation
        await home.advance("4m")
        assert home.titles() == ["humid"]


NEW_YORK = {**HOME, "time_zone": "America/New_York"}


@pytest.mark.parametrize(
    ("cron", "start", "advance_to", "local_times"),
    [
        # spring forward 2026-03-08: 02:00 → 03:00; 02:30 does not exist: runs once, at 03:00
        ("30 2 * * *", "2026-03-07 12:00", "2026-03-09 12:00", ["03-08 03:00", "03-09 02:30"]),
        # fall back 2026-11-01: 02:00 → 01:00; 01:30 happens twice: runs once
        ("30 1 * * *", "2026-10-31 12:00", "2026-11-02 12:00", ["11-01 01:30", "11-02 01:30"]),
        # an hourly job runs in both repeated hours (an hour of real time passed)
        (
            "0 * * * *",
            "2026-11-01 00:30",
            "2026-11-01 02:30",
            ["11-01 01:00", "11-01 01:00", "11-01 02:00"],
        ),
        # a weekday job, in the home's zone, not UTC
        ("0 7 * * mon-fri", "2026-01-09 12:00", "2026-01-13 00:00", ["01-12 07:00"]),
    ],
    ids=["spring-forward", "fall-back", "hourly-fall-back", "weekdays"],
)
async def test_cron_in_the_home_zone_across_dst(
    tmp_path: Path, cron: str, start: str, advance_to: str, local_times: list[str]
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
    async with simulate(tmp_path, NEW_YORK, start=start) as home:
        await home.advance_to(advance_to)
        zone = home.engine.services.zone
        fired = [t.at.astimezone(zone).strftime("%m-%d %H:%M") for t in home.traces("scheduled")]
        assert fired == local_times
        assert len(home.titles()) == len(local_times)


async def test_interval_startup_and_several_triggers(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import every, rule, startup, when

        @rule(on=[startup(), every("15m"), when("co", to="warning")])
        async def check(event, home):
            await home.notify(event.name)
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        assert home.titles() == ["started"]
        await home.advance("44m")
        assert home.titles() == ["started", "schedule", "schedule"]
        await home.set("Hallway", co="warning")
        assert home.titles()[-1] == "co"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('on = { cron = "*/20 * * * * *" }', "has 6 fields"),
        ('on = { cron = "61 * * * *" }', "not a valid cron"),
        ('on = { every = "often" }', "not a duration"),
        ('on = { cron = "0 7 * * *", device = "Den" }', "takes no other key"),
        ('on = { event = "temperature", above = "hot" }', "take a number"),
        ('on = { event = "presence", hold = "soon" }', "not a duration"),
    ],
)
def test_a_bad_trigger_is_a_load_error_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    rule_file(
        tmp_path,
        "bad.toml",
        f'# a comment\n[[rule]]\nname = "x"\n{text}\ndo = [{{ action = "notify", title = "t" }}]\n',
    )
    errors = [str(e) for e in load_directory(tmp_path).errors]
    assert len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / 'bad.toml'}:4: "), errors[0]  # at the key
    assert message in errors[0]
