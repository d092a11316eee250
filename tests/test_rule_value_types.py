"""A rule value of the wrong type, not finite or beyond any sensible bound is its file's
error, with the file and line, while the other rules load (an audit of hostile input).

Before the fix a few of them escaped as a TypeError or AttributeError out of the loader
(a traceback from `roost check`; `roost run` dying at the start or at a SIGHUP reload),
some loaded silently as rules that can never fire (`above = nan`), and a hold of
"9999999d" loaded and then crashed the engine at the first matching event (the hold's due
time is past year 9999)."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.core.durations import parse_duration
from roost.engine.loader import load_directory
from roost.engine.toml_check import check_rule
from roost.engine.toml_rules import RuleProblems, compile_rule

ROOT = Path(__file__).resolve().parent.parent
GOOD = """
[[rule]]
name = "stays"
on = { event = "co", to = "emergency" }
do = [{ action = "notify", title = "CO" }]
"""
BAD_RULES = {
    "hysteresis a string": 'on = { event = "temperature", above = 26, hysteresis = "0.5" }',
    "hysteresis not finite": 'on = { event = "temperature", above = 26, hysteresis = nan }',
    "above not a number": 'on = { event = "temperature", above = nan }',
    "above infinite": 'on = { event = "temperature", above = inf }',
    "below infinite": 'on = { event = "temperature", below = -inf }',
    "hold a table": 'on = { event = "temperature", above = 26, hold = { minutes = 5 } }',
    "hold beyond datetime": 'on = { event = "temperature", above = 26, hold = "9999999d" }',
    "hold a huge number": 'on = { event = "temperature", above = 26, hold = 1e300 }',
    "to a list of lists": 'on = { event = "smoke", to = [["warning"]] }',
    "cooldown not a number": 'on = { event = "co", to = "emergency" }\ncooldown = nan',
    "cooldown infinite": 'on = { event = "co", to = "emergency" }\ncooldown = inf',
    "condition holding a list": 'on = { event = "temperature" }\ncondition = [[], { device = '
    '"event", attribute = "mode", equals = "cool" }]',  # was dropped without a word
}


@pytest.mark.parametrize("body", list(BAD_RULES.values()), ids=list(BAD_RULES))
def test_a_bad_value_is_the_files_error_and_the_others_load(tmp_path: Path, body: str) -> None:
    (tmp_path / "good.toml").write_text(GOOD)
    do = 'do = [{ action = "notify", title = "t" }]'
    text = f'# a comment\n[[rule]]\nname = "bad"\n{body}\n{do}\n'
    (tmp_path / "bad.toml").write_text(text)
    result = load_directory(tmp_path)
    assert [r.name for r in result.rules] == ["stays"]
    assert result.errors, "the bad rule is not reported"
    for error in result.errors:
        assert error.path.name == "bad.toml"
        assert 2 <= error.line <= 5, error  # the rule's lines, not 0


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e300, "9999999d", "99999999999s", {}, []])
def test_a_duration_that_no_clock_can_hold_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_a_ten_year_duration_is_still_a_duration() -> None:
    assert parse_duration("3650d") == 3650 * 86400


# --- mutated example rules: the loader's only failure is RuleProblems ----------------------

EXAMPLES = [
    table
    for path in sorted((ROOT / "rules").glob("*.toml"))
    for table in tomllib.loads(path.read_text(encoding="utf-8"))["rule"]
]
KEYS = ["on", "do", "hold", "cooldown", "debounce", "mode", "rate", "max", "condition", "to",
        "above", "below", "hysteresis", "event", "device", "celsius", "tags", "title", "target",
        "every", "cron", "timeout", "priority"]  # fmt: skip
ODD = st.one_of(  # what TOML can write (it has no null)
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "1h", "-5m", "9999999d", "co", "emergency", "all", "notify", "25:00"]),
    st.text(max_size=8),
    st.lists(st.lists(st.integers(), max_size=2), max_size=2),
    st.dictionaries(st.sampled_from(KEYS), st.integers() | st.text(max_size=4), max_size=2),
)


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*at, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*at, index))
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_example_rule_compiles_or_says_why(data: st.DataObject) -> None:
    table = copy.deepcopy(data.draw(st.sampled_from(EXAMPLES)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from([p for p in _paths(table) if p]))
        parent = table
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            parent[data.draw(st.sampled_from(KEYS))] = data.draw(ODD)
        else:
            parent[path[-1]] = data.draw(ODD)
    try:
        built = compile_rule(check_rule(table), "mutated.toml:1")
    except RuleProblems as exc:
        problems = exc.problems
        assert problems
        return
    for trigger in built.triggers:
        for name in ("hold_s", "seconds"):
            assert math.isfinite(getattr(trigger, name, 0.0))
