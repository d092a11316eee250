"""`roost check` refuses every rule that would otherwise fail silently or at run time,
with FILE:LINE at the offending key; the rest of the file loads."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from roost.cli.entry import main
from roost.core.codec import home_to_dict
from roost.engine.loader import load_directory
from roost.engine.rule_home import UnknownDevice
from roost.store.sqlite import Store
from roost.testing import simulate
from roost.testing.sandbox import build_home
from tests.rulekit import HOME, rule_file

RULE_HEAD = '[[rule]]\nname = "r"\non = { event = "co" }\n'


def check(tmp_path: Path, name: str, text: str, *extra: str) -> tuple[int, list[str]]:
    path = rule_file(tmp_path, name, text)
    code = main(["check", str(path), *extra])
    errors = [str(e) for e in load_directory(tmp_path).errors]
    return code, errors


def errors_of(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # tags = "urgent" used to become the tags u, r, g, e, n, t
        (
            RULE_HEAD + '\n[[rule.do]]\naction = "notify"\ntitle = "CO"\ntags = "urgent"\n',
            8,
            'tags is a list: tags = ["urgent"]',
        ),
        (
            RULE_HEAD + 'do = [\n  { action = "notify", title = "x" },\n'
            '  { action = "thermostat.set_heat", celsius = "twenty" },\n]\n',
            6,
            "celsius: Input should be a valid number (not 'twenty')",
        ),
        (
            RULE_HEAD + 'do = [{ action = "thermostat.set_mode", mode = "turbo" }]\n',
            4,
            "do[0].mode: Input should be 'heat', 'cool', 'heat-cool', 'eco' or 'off'",
        ),
        (
            RULE_HEAD + '[[rule.do]]\naction = "notify"\ntitle = "x"\nbody = "{device.nme}"\n',
            7,
            "{device} has no field 'nme'; it has: allowed_range_c",
        ),
        (
            RULE_HEAD + 'do = [{ action = "notify", title = "x", priority = "critical" }]\n',
            4,
            "priority: Input should be 'low', 'normal', 'high' or 'urgent'",
        ),
        (
            '[[rule]]\nname = "r"\non = { event = "connectivity", to = "gone" }\n'
            'do = [{ action = "notify", title = "x" }]\n',
            3,
            "event 'connectivity' never has to='gone'; its values are: online, offline",
        ),
        (
            '[[rule]]\nname = "r"\non = { event = "motion", to = "yes" }\n'
            'do = [{ action = "notify", title = "{event.new}" }]\n',
            3,
            "event 'motion' has no field 'to'",
        ),
    ],
)
def test_a_toml_mistake_is_refused_at_its_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, message: str
) -> None:
    code, _ = check(tmp_path, "r.toml", text)
    errors = errors_of(capsys)
    assert code == 1
    assert errors[0].startswith(f"{tmp_path / 'r.toml'}:{line}: rule 'r': "), errors
    assert message in errors[0]


def test_a_python_priority_that_can_only_fail_is_refused_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """
    from roost import rule, when

    @rule(on=when("co"))
    async def bad_priority(event, home):
        await home.notify(
            "CO",
            priority="critical",
        )

    @rule(on=when("smoke"))
    async def fine(event, home):
        await home.notify("smoke", tags=["urgent"], priority="urgent")
        await home.device("Den").set_mode("turbo")
    """
    code, _ = check(tmp_path, "r.py", text)
    errors = errors_of(capsys)
    assert code == 1
    path = tmp_path / "r.py"
    assert errors == [
        f"{path}:7: rule 'bad_priority': priority 'critical': use one of low, normal, high, urgent",
        f"{path}:13: rule 'fine': set_mode('turbo'): use one of heat, cool, heat-cool, eco, off",
    ]


def test_every_error_of_a_file_is_reported_and_its_good_rules_load(tmp_path: Path) -> None:
    text = """
    [[rule]]
    name = "doorbell"
    on = { event = "chime" }
    cooldwn = "30s"
    do = [{ action = "notify", title = "{device.nme}", tags = "door" }]

    [[rule]]
    name = "co alert"
    on = { event = "co", to = ["warning", "emergency"] }
    do = [{ action = "notify", title = "CO", priority = "urgent", tags = ["urgent"] }]
    """
    rule_file(tmp_path, "mixed.toml", text)
    result = load_directory(tmp_path)
    assert [r.name for r in result.rules] == ["co alert"]
    path = tmp_path / "mixed.toml"
    shown = [(str(e.path), e.line, e.rule) for e in result.errors]
    assert shown == [(str(path), 4, "doorbell")] + [(str(path), 5, "doorbell")] * 2
    assert "unknown key 'cooldwn'" in result.errors[0].message
    messages = {result.errors[1].message, result.errors[2].message}
    assert any('tags = ["door"]' in m for m in messages)
    assert any("{device} has no field 'nme'" in m for m in messages)


def test_the_connectivity_words_the_demo_prints_match(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.toml",
        """
        [[rule]]
        name = "offline"
        on = { event = "connectivity", to = "offline" }
        do = [{ action = "notify", title = "{device.name} is offline" }]
        """,
    )

    async def scenario() -> list[str]:
        async with simulate(tmp_path, HOME) as home:
            await home.set("Den", online=False)
            await home.set("Den", online=True)
            return home.titles()

    assert anyio.run(scenario) == ["Den is offline"]


# ---- against the last known home ---------------------------------------------------------


def stored_home(tmp_path: Path, *descriptions: dict[str, object]) -> Path:
    """A settings file whose state directory holds these homes (one account each)."""
    state = tmp_path / "state"
    state.mkdir()

    async def put() -> None:
        store = Store.open(state)
        try:
            for number, description in enumerate(descriptions):
                home = dataclasses.replace(build_home(description), account=f"a{number}")
                await store.home_put(home.account, home_to_dict(home), datetime.now(UTC))
        finally:
            store.close()

    anyio.run(put)
    config = tmp_path / "roost.toml"
    config.write_text(
        textwrap.dedent(f"""
        [daemon]
        state_dir = "{state}"
        rules_dir = "{tmp_path / "rules"}"

        [[notify.targets]]
        url = "json://127.0.0.1:9/"
        tags = ["urgent"]
        """),
        encoding="utf-8",
    )
    (tmp_path / "rules").mkdir()
    return config


def test_names_are_checked_against_the_stored_home_and_tags_against_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stored_home(tmp_path, HOME)
    rules = tmp_path / "rules"
    rule_file(
        rules,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("co", device="Hallway"))
        async def kitchen(event, home):
            await home.device("Kitchen").set_heat(21)
            await home.notify("x", tags=["urgent", "pager"])
        """,
    )
    rule_file(
        rules,
        "t.toml",
        """
        [[rule]]
        name = "t"
        on = { event = "presence", device = "Garage" }
        do = [{ action = "thermostat.set_heat", target = { room = "Attic" }, celsius = 20 }]
        """,
    )
    assert main(["check", "--config", str(config)]) == 1
    errors = errors_of(capsys)
    devices = "Bedroom, Den, Front Door, Hallway"
    assert errors == [
        f"{rules / 'r.py'}:5: rule 'kitchen': no device 'Kitchen'; the home has: {devices}",
        f"{rules / 'r.py'}:6: rule 'kitchen': no notification target has the tag 'pager': add"
        " it to a [[notify.targets]] entry's tags",
        f"{rules / 't.toml'}:3: rule 't': no device 'Garage'; the home has: {devices}",
        f"{rules / 't.toml'}:4: rule 't': no room 'Attic'; the home has: {devices}",
    ]


TWO_STRUCTURES = (
    {"structure": "House", "thermostats": {"Den": {"mode": "heat"}}},
    {"structure": "Cabin", "thermostats": {"Stove": {"mode": "heat"}}},
)

PRESENCE_ON_CRON = """
[[rule]]
name = "wake up"
on = { cron = "30 6 * * mon-fri" }
condition = { presence = "home" }
do = [{ action = "thermostat.set_heat", target = "all", celsius = 21 }]
"""


def test_presence_without_structure_on_a_schedule_needs_one_when_there_are_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = stored_home(tmp_path, *TWO_STRUCTURES)
    rule_file(tmp_path / "rules", "wake.toml", PRESENCE_ON_CRON)
    assert main(["check", "--config", str(config)]) == 1
    errors = errors_of(capsys)
    assert len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / 'rules' / 'wake.toml'}:4: rule 'wake up': ")
    assert "name one (structure = 'Cabin', 'House')" in errors[0]


def test_presence_without_structure_on_a_schedule_is_the_only_structure(tmp_path: Path) -> None:
    rule_file(tmp_path, "wake.toml", PRESENCE_ON_CRON)

    async def scenario() -> list[str]:
        async with simulate(tmp_path, HOME, start="2026-01-05 06:00") as home:
            await home.advance("1h")  # Monday 06:30, the House is home
            return home.actions()

    assert anyio.run(scenario) == ["Den: heat to 21 °C", "Bedroom: heat to 21 °C"]


def test_a_missing_device_names_the_known_ones(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("co"))
        async def kitchen(event, home):
            home.device(event.account + "Kitchen")
        """,
    )

    async def scenario() -> str:
        async with simulate(tmp_path, HOME) as home:
            await home.set("Hallway", co="warning")
            return home.traces("kitchen")[-1].reason

    shown = anyio.run(scenario)
    assert UnknownDevice.__name__ in shown
    assert "the home has: Bedroom, Den, Front Door, Hallway" in shown
