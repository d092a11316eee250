"""The shared payload readers, the account's payload health, and the parse caps."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import structlog

from roost.core.model import ThermostatMode
from roost.providers.bounds import (
    MAX_DEPTH,
    MAX_PATH_SEGMENTS,
    PayloadTooLarge,
    check_devices,
    check_path,
    parse_json,
)
from roost.providers.health import PayloadHealth
from roost.providers.readers import Fields, Problems

MODES = {m.value: m for m in ThermostatMode}


def read(raw: dict[str, Any]) -> tuple[Fields, Problems]:
    problems = Problems()
    return problems.fields(raw, "t1"), problems


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (float("nan"), "not finite"),
        (float("inf"), "not finite"),
        (float("-inf"), "not finite"),
        (json.loads("1e309"), "not finite"),  # json reads it as infinity
        (10**400, "out of range"),
        (101.0, "out of range"),
        (-50.5, "out of range"),
        ("21", "wrong type"),
        (True, "wrong type"),
        ([21], "wrong type"),
        ({"c": 21}, "wrong type"),
    ],
)
def test_an_unusable_temperature_is_unknown_and_noted(value: Any, kind: str) -> None:
    fields, problems = read({"temp": value})
    assert fields.celsius("temp") is None
    assert [(p.target, p.field, p.kind) for p in problems.found] == [("t1", "temp", kind)]


def test_a_usable_number_passes_and_a_missing_one_is_not_a_problem() -> None:
    fields, problems = read({"temp": 21, "humidity": 100, "far": 212})
    assert fields.celsius("temp") == 21.0
    assert fields.percent("humidity") == 100.0
    assert fields.fahrenheit("far") == pytest.approx(100.0)
    assert fields.celsius("absent") is None
    assert problems.found == []
    fields, problems = read({"humidity": 100.5, "far": 213})
    assert fields.percent("humidity") is None
    assert fields.fahrenheit("far") is None  # 100.6 °C
    assert [p.kind for p in problems.found] == ["out of range", "out of range"]


def test_enum_flag_text_and_integer() -> None:
    raw = {"mode": "heat", "odd": "heating-stage2", "num": 3, "flag": "yes", "name": 7, "n": 300}
    fields, problems = read(raw)
    assert fields.enum("mode", MODES) is ThermostatMode.HEAT
    assert fields.enum("missing", MODES, default="off") is ThermostatMode.OFF
    assert fields.enum("odd", MODES) is None
    assert fields.enum("num", MODES) is None
    assert fields.flag("flag", default=False) is None
    assert fields.flag("missing", default=True) is True
    assert fields.text("name") is None
    assert fields.integer("n", 0, 255) is None
    assert [(p.field, p.kind) for p in problems.found] == [
        ("odd", "unknown value"),
        ("num", "wrong type"),
        ("flag", "wrong type"),
        ("name", "wrong type"),
        ("n", "out of range"),
    ]


def test_nested_access_never_raises() -> None:
    fields, problems = read({"trait": [1, 2], "list": [{"id": "a"}, 5, "x"]})
    assert fields.child("trait").celsius("x") is None
    assert fields.child("missing").child("deeper").text("x") is None
    assert list(fields.children("list")) == [{"id": "a"}]
    assert [(p.field, p.kind) for p in problems.found] == [
        ("trait", "wrong type"),
        ("list", "wrong type"),
        ("list", "wrong type"),
    ]
    problems = Problems()
    problems.fields("not an object", "t2").celsius("x")
    assert [(p.target, p.kind) for p in problems.found] == [("t2", "wrong type")]


def test_a_huge_value_is_shown_short() -> None:
    fields, problems = read({"name": "x" * 10_000, "big": 10**5000})
    fields.celsius("name")
    fields.celsius("big")
    assert all(len(p.value) <= 40 for p in problems.found)


# --- payload health ------------------------------------------------------------------------


def problems_of(*found: tuple[str, str]) -> Problems:
    problems = Problems()
    for target, field in found:
        problems.fields({}, target).bad(field, "unknown value", "?")
    return problems


def test_a_problem_is_logged_once_per_device_and_field_and_degrades_while_present() -> None:
    health = PayloadHealth("home")
    with structlog.testing.capture_logs() as logs:
        for _ in range(50):  # fifty puts with the same odd value
            health.review(problems_of(("t1", "hvac_state")))
    assert [e["event"] for e in logs].count("unreadable field: the attribute is unknown") == 1
    assert health.problems_total == 1
    assert health.reason is not None
    assert "t1 hvac_state: unknown value" in health.reason
    health.review(problems_of(("t2", "humidity")))  # t1 was not read again: still present
    assert health.problem_count == 2
    clean = Problems()
    clean.fields({}, "t1")
    clean.fields({}, "t2")
    health.review(clean)
    assert health.reason is None
    assert health.problems_total == 2


def test_a_device_gone_takes_its_problems_with_it() -> None:
    health = PayloadHealth("home")
    health.review(problems_of(("t1", "mode")))
    health.review(Problems(), keep={"t2"})
    assert health.reason is None


def test_a_skipped_payload_degrades_until_the_next_good_one() -> None:
    health = PayloadHealth("home")
    health.reject("document nested deeper than 32 levels")
    assert health.rejected_total == 1
    assert health.reason == "payload skipped: document nested deeper than 32 levels"
    health.review(Problems())
    assert health.reason is None


# --- parse caps -----------------------------------------------------------------------------


def test_deep_json_is_refused_not_a_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(PayloadTooLarge, match="nested deeper"):
        parse_json(deep)
    just_over = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(PayloadTooLarge, match="nested deeper"):
        parse_json(just_over)
    assert parse_json("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_depth_counts_objects_and_arrays_alike_beside_shallow_siblings() -> None:
    def nested(levels: int) -> str:  # {"k": [{"k": [ ... ]}]}, beside a shallow sibling
        text = "[]"
        for level in range(1, levels):
            text = f'{{"k": {text}, "flat": 2}}' if level % 2 else f"[{text}, 3, [4]]"
        return text

    assert parse_json(nested(MAX_DEPTH)) is not None
    with pytest.raises(PayloadTooLarge, match="nested deeper"):
        parse_json(nested(MAX_DEPTH + 1))


def test_size_path_and_device_caps() -> None:
    with pytest.raises(PayloadTooLarge, match="exceeds the cap"):
        parse_json(b" " * 100 + b"{}", max_bytes=100)
    with pytest.raises(PayloadTooLarge, match="segments"):
        check_path("/a" * 5000)
    with pytest.raises(PayloadTooLarge, match="segments"):
        check_path("/a" * (MAX_PATH_SEGMENTS + 1))
    assert check_path("/devices/thermostats/t1/hvac_mode") == [
        "devices",
        "thermostats",
        "t1",
        "hvac_mode",
    ]
    check_devices(2000)
    with pytest.raises(PayloadTooLarge, match="2001 devices"):
        check_devices(2001)


def test_not_json_is_a_value_error_and_finite_values_survive() -> None:
    with pytest.raises(ValueError, match="Expecting"):
        parse_json("{not json")
    assert math.isinf(parse_json("1e309"))  # the readers, not the parser, refuse it
