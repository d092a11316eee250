"""Rule files: broken ones are reported with file and line, the others load."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from roost.cli.entry import main
from roost.engine.loader import load_directory

GOOD_PY = """
from roost import rule, when

@rule(on=when("presence", to="away"))
async def good_python(event, home):
    pass
"""

GOOD_TOML = """
[[rule]]
name = "good toml"
on = { event = "co", to = "emergency" }
do = [{ action = "notify", title = "CO {event.new}" }]
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_with(tmp_path: Path, name: str, text: str) -> tuple[list[str], list[str]]:
    write(tmp_path, "good.py", GOOD_PY)
    write(tmp_path, "good.toml", GOOD_TOML)
    write(tmp_path, name, text)
    result = load_directory(tmp_path)
    return sorted(r.name for r in result.rules), [str(e) for e in result.errors]


def test_good_files_load(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD_PY)
    write(tmp_path, "good.toml", GOOD_TOML)
    result = load_directory(tmp_path)
    assert sorted(r.name for r in result.rules) == ["good toml", "good_python"]
    assert result.errors == []


@pytest.mark.parametrize(
    ("name", "text", "line", "message"),
    [
        ("syntax.py", "from roost import rule\n\ndef broken(:\n    pass\n", 3, "syntax error"),
        (
            "raises.py",
            "from roost import rule, when\n\nx = 1\nraise RuntimeError('boom')\n",
            4,
            "RuntimeError: boom",
        ),
        (
            "bad_event.py",
            "from roost import rule, when\n\n\n@rule(on=when('presense'))\n"
            "async def r(e, h):\n    pass\n",
            4,
            "unknown event 'presense'",
        ),
        (
            "bad_filter.py",
            "from roost import rule, when\n\n@rule(on=when('co', too='ok'))\n"
            "async def r(e, h):\n    pass\n",
            3,
            "has no field 'too'",
        ),
        ("empty.py", "x = 1\n", 1, "no rules"),
        ("syntax.toml", '[[rule]]\nname = "x"\non = {\n', 3, "TOML syntax"),
        (
            "bad_event.toml",
            GOOD_TOML.replace("good toml", "other").replace('"co"', '"carbon"') + "\n",
            3,
            "rule 'other': unknown event 'carbon'",
        ),
        (
            "bad_attribute.toml",
            GOOD_TOML.replace("good toml", "first")
            + '\n[[rule]]\nname = "warm"\non = { event = "presence", to = "home" }\n'
            'condition = { device = "Den", attribute = "temprature", above = 20 }\n'
            'do = [{ action = "thermostat.set_heat", celsius = 21 }]\n',
            9,
            "unknown device attribute 'temprature'",
        ),
        (
            "bad_action.toml",
            '[[rule]]\nname = "a"\non = { event = "co" }\ndo = [{ action = "explode" }]\n',
            4,
            "unknown action 'explode'",
        ),
        (
            "bad_template.toml",
            '[[rule]]\nname = "t"\non = { event = "co" }\n'
            'do = [{ action = "notify", title = "{os.system}" }]\n',
            4,
            "unknown name 'os'",
        ),
        (
            "bad_key.toml",
            '[[rule]]\nname = "k"\non = { event = "co" }\ncooldwn = "1m"\n'
            'do = [{ action = "notify", title = "x" }]\n',
            4,
            "unknown key 'cooldwn'",
        ),
        (
            "bad_duration.toml",
            '[[rule]]\nname = "d"\non = { event = "co" }\ncooldown = "ten minutes"\n'
            'do = [{ action = "notify", title = "x" }]\n',
            4,
            "not a duration",
        ),
    ],
)
def test_a_broken_file_names_file_and_line_and_the_others_load(
    tmp_path: Path, name: str, text: str, line: int, message: str
) -> None:
    rules, errors = load_with(tmp_path, name, text)
    assert {"good toml", "good_python"} <= set(rules)
    assert len(errors) == 1
    assert errors[0].startswith(f"{tmp_path / name}:{line}: "), errors[0]
    assert message in errors[0]


def test_duplicate_rule_names_are_an_error(tmp_path: Path) -> None:
    rules, errors = load_with(tmp_path, "dup.toml", GOOD_TOML)
    assert rules == ["good toml", "good_python"]
    assert len(errors) == 1
    assert "'good toml' is already used" in errors[0]


def test_roost_check_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, "good.toml", GOOD_TOML)
    assert main(["check", "--rules", str(tmp_path)]) == 0
    write(tmp_path, "bad.py", "def (:\n")
    assert main(["check", "--rules", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad.py'}:1: syntax error" in err


def test_the_repository_rules_load() -> None:
    result = load_directory(Path(__file__).parent.parent / "rules")
    assert result.errors == []
    assert {"eco_when_away", "co alert", "welcome home", "co_cleared"} <= {
        r.name for r in result.rules
    }
