"""Sunrise/sunset triggers and conditions from the home's location (astral), in local time."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import pytest

from roost.cli.entry import main
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

BERLIN = (52.52, 13.405)

SUNSET_TOML = """
[[rule]]
name = "lights before sunset"
on = { sun = "sunset", offset = "-30m" }
do = [{ action = "notify", title = "dusk at {event.at}" }]
"""


async def test_sunset_with_an_offset_follows_the_local_clock_across_dst(tmp_path: Path) -> None:
    rule_file(tmp_path, "sunset.toml", SUNSET_TOML)
    # Berlin: the clocks jump from 02:00 to 03:00 on Sunday 2026-03-29.
    async with simulate(tmp_path, HOME, start="2026-03-27 12:00", location=BERLIN) as home:
        await home.advance("3d")
        runs = [
            t.at.astimezone(home.local_now().tzinfo) for t in home.traces("lights before sunset")
        ]
        titles = home.titles()
    local = [f"{r:%m-%d %H:%M}" for r in runs]
    # Sunset in Berlin (NOAA): 27 Mar 18:31 CET, 28 Mar 18:33 CET, 29 Mar 19:35 CEST.
    assert [x[:5] for x in local] == ["03-27", "03-28", "03-29"]
    expected = {"03-27": (18, 1), "03-28": (18, 3), "03-29": (19, 5)}
    for run in runs:
        hour, minute = expected[f"{run:%m-%d}"]
        wanted = run.replace(hour=hour, minute=minute, second=0, microsecond=0)
        assert abs(run - wanted) < timedelta(minutes=2), local
    # The sun does not change its clock: across the DST night the runs stay ~24 h apart
    # in UTC, while the local time jumps by an hour.
    utc = [r.astimezone(UTC) for r in runs]
    assert timedelta(hours=23, minutes=55) < utc[2] - utc[1] < timedelta(hours=24, minutes=5)
    # {event.at} is shown in the home's zone.
    assert titles[2].startswith("dusk at 2026-03-29 19:0")
    assert titles[2].endswith("+02:00")


async def test_a_sun_condition_is_true_in_the_dark_only(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "dark.py",
        """
        from roost import rule, sun_between, when

        @rule(on=when("motion"), condition=sun_between("sunset", "sunrise", after_offset="15m"))
        async def porch_light(event, home):
            await home.notify("dark at the door")
        """,
    )
    async with simulate(tmp_path, HOME, start="2026-06-21 12:00", location=BERLIN) as home:
        await home.motion("Front Door")  # noon: no
        await home.advance("9h45m")  # 21:45, sunset 21:33 + 15m = 21:48: still no
        await home.motion("Front Door")
        await home.advance("10m")  # 21:55: yes
        await home.motion("Front Door")
        await home.advance("6h")  # 03:55, sunrise 04:43: yes
        await home.motion("Front Door")
        await home.advance("1h")  # 04:55: no
        await home.motion("Front Door")
        assert home.titles() == ["dark at the door", "dark at the door"]
        conditions = home.traces("porch_light")[0].conditions
        assert "between sunset and sunrise" in conditions[0][0]


def test_check_says_a_sun_trigger_needs_a_location(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file(rules, "sunset.toml", SUNSET_TOML)
    config = tmp_path / "roost.toml"
    config.write_text(
        f'[daemon]\nrules_dir = "{rules}"\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8"
    )
    assert main(["check", "--config", str(config)]) == 1
    assert (
        "a sun trigger needs the home's [location] latitude and longitude"
        in capsys.readouterr().err
    )
    config.write_text(config.read_text() + "[location]\nlatitude = 52.5\nlongitude = 13.4\n")
    assert main(["check", "--config", str(config)]) == 0
