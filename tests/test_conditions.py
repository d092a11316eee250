"""Conditions on the home's current state, composed with all / any / not, in both faces."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.engine.loader import load_directory
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

PYTHON = """
from roost import all_of, any_of, device_state, not_, presence, rule, time_between, weekday, when

@rule(
    on=when("motion"),
    condition=all_of(
        presence("home"),
        any_of(device_state("Den", "ambient_c", below=18), time_between("22:00", "06:00")),
        not_(weekday("sun")),
    ),
)
async def warm_on_motion(event, home):
    await home.notify("warm up")
"""

TOML = """
[[rule]]
name = "warm on motion"
on = { event = "motion" }
do = [{ action = "notify", title = "warm up" }]

[rule.condition]
all = [
    { presence = "home" },
    { any = [
        { device = "Den", attribute = "ambient_c", below = 18 },
        { time = { after = "22:00", before = "06:00" } },
    ] },
    { not = { weekday = "sun" } },
]
"""


@pytest.mark.parametrize(("name", "text"), [("r.py", PYTHON), ("r.toml", TOML)])
async def test_all_any_not_on_state_presence_time_and_weekday(
    tmp_path: Path, name: str, text: str
) -> None:
    rule_file(tmp_path, name, text)
    # Monday 2026-01-05 12:00 in Berlin; the Den is at 20 °C
    async with simulate(tmp_path, HOME, start="2026-01-05 12:00") as home:
        await home.motion("Front Door")  # warm and daytime: no
        await home.set("Den", ambient_c=17.0)
        await home.motion("Front Door")  # cold: yes
        await home.set("House", presence="away")
        await home.motion("Front Door")  # nobody home: no
        await home.set("House", presence="home")
        await home.set("Den", ambient_c=20.0)
        await home.advance_to("2026-01-05 23:00")
        await home.motion("Front Door")  # night: yes
        await home.advance_to("2026-01-11 23:00")
        await home.motion("Front Door")  # Sunday night: no
        assert home.titles() == ["warm up", "warm up"]

        last = home.traces()[-1]
        assert last.result == "skipped"
        assert last.reason == "condition not met"
        results = dict(last.conditions)
        assert results["weekday in sun (today is sun)"] is True
        assert results["not (weekday in sun)"] is False


async def test_a_plain_python_condition_and_code_in_the_body(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        def den_is_heating(event, home):
            return home.device("Den").mode == "heat"

        @rule(on=when("co"), condition=den_is_heating)
        async def alert(event, home):
            if event.new == "ok":
                return
            await home.notify(f"co {event.new}")
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.set("Hallway", co="warning")
        await home.set("Hallway", co="ok")
        await home.set("Den", mode="off")
        await home.set("Hallway", co="emergency")
        assert home.titles() == ["co warning"]
        assert home.traces("alert")[-1].conditions == [("den_is_heating", False)]


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        (
            "bad.py",
            "from roost import rule, device_state, when\n\n@rule(on=when('co'),\n"
            "      condition=device_state('Den', 'temprature', below=3))\n"
            "async def r(e, h):\n    pass\n",
            4,
            "unknown device attribute 'temprature'",
        ),
        (
            "bad.toml",
            '[[rule]]\nname = "x"\non = { event = "co" }\n'
            'condition = { any = [{ structure = "event", attribute = "presense",'
            ' equals = "home" }] }\n'
            'do = [{ action = "notify", title = "t" }]\n',
            4,
            "unknown structure attribute 'presense'",
        ),
        (
            "window.toml",
            '[[rule]]\nname = "x"\non = { event = "co" }\n'
            'condition = { time = { after = "25:00", before = "06:00" } }\n'
            'do = [{ action = "notify", title = "t" }]\n',
            4,
            "not a time of day",
        ),
        (
            "day.py",
            "from roost import rule, weekday, when\n\n@rule(on=when('co'), "
            "condition=weekday('funday'))\nasync def r(e, h):\n    pass\n",
            3,
            "unknown weekday 'funday'",
        ),
        (
            "days.toml",
            '[[rule]]\nname = "x"\non = { event = "co" }\ncondition = { weekday = true }\n'
            'do = [{ action = "notify", title = "t" }]\n',
            4,
            'weekday is a day or a list of days: weekday = ["sat", "sun"]',
        ),
    ],
)
def test_a_bad_condition_is_a_load_error(
    tmp_path: Path, name: str, text: str, line: int, message: str
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    errors = [str(e) for e in load_directory(tmp_path).errors]
    assert len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / name}:{line}: "), errors[0]
    assert message in errors[0]
