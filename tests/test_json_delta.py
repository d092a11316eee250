"""The delta parser (providers/json_delta.py) reads each text of a stream exactly as
`parse_json` does, parsing only the leaves that changed, and keeps every parse cap."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.providers.bounds import MAX_CONTAINERS, MAX_DEPTH, PayloadTooLarge, parse_json
from roost.providers.json_delta import DeltaParser


def home(humidity: float = 40.0, name: str = "Hall", extra: dict[str, Any] | None = None) -> str:
    devices = {
        f"t{i}": {"humidity": humidity if i == 1 else 50, "name": f"Room {i}", "on": True}
        for i in range(3)
    }
    data: dict[str, Any] = {
        "devices": {"thermostats": devices},
        "structures": {"s1": {"name": name, "wheres": {"w1": {"name": "Hall"}}}},
        **(extra or {}),
    }
    return json.dumps({"path": "/", "data": data})


def test_a_change_in_one_device_parses_that_device_and_shares_the_rest() -> None:
    parser = DeltaParser()
    first = parser.parse(home(40))
    second = parser.parse(home(41.5))
    assert second == json.loads(home(41.5))
    assert (parser.whole, parser.patched) == (1, 1)
    before = first["data"]["devices"]["thermostats"]
    after = second["data"]["devices"]["thermostats"]
    assert after["t1"]["humidity"] == 41.5
    assert before["t1"]["humidity"] == 40
    assert after["t0"] is before["t0"]
    assert after["t2"] is before["t2"]
    assert second["data"]["structures"] is first["data"]["structures"]


def test_a_number_that_grows_or_shrinks_is_read_whole() -> None:
    parser = DeltaParser()
    for value in (4, 45, 4, 450.25, 4e3, -4):
        assert parser.parse(home(value)) == json.loads(home(value))
    assert parser.patched == 5


def test_a_change_of_shape_is_parsed_whole() -> None:
    parser = DeltaParser()
    parser.parse(home())
    for text in (home(extra={"metadata": {"a": 1}}), home(), home(extra={"x": []})):
        assert parser.parse(text) == json.loads(text)
    assert parser.patched == 0


def test_a_value_inserted_after_a_leaf_is_not_taken_for_the_leaf() -> None:
    parser = DeltaParser()
    parser.parse('{"a": {"b": {"c": {"d": {"e": 1}}}}, "z": 2}')
    text = '{"a": {"b": {"c": {"d": {"e": 1}, "x": 3}}}, "z": 2}'
    assert parser.parse(text) == json.loads(text)
    assert parser.patched == 0


def test_a_duplicate_key_reads_as_json_does() -> None:
    parser = DeltaParser()
    text = '{"a": {"b": 1, "b": 2}, "c": 3}'
    assert parser.parse(text) == {"a": {"b": 2}, "c": 3}
    changed = '{"a": {"b": 1, "b": 5}, "c": 3}'
    assert parser.parse(changed) == {"a": {"b": 5}, "c": 3}


def test_malformed_text_fails_as_parse_json_does_and_the_next_text_is_read() -> None:
    parser = DeltaParser()
    parser.parse(home(40))
    broken = home(40).replace('"humidity": 40', '"humidity": 4x0')
    with pytest.raises(json.JSONDecodeError):
        parser.parse(broken)
    with pytest.raises(json.JSONDecodeError):
        parser.parse(home(40)[:-3])
    assert parser.parse(home(42)) == json.loads(home(42))


def test_a_changed_leaf_nested_too_deep_is_refused() -> None:
    """The depth cap holds for a leaf parsed alone: its depth counts from the root."""
    parser = DeltaParser()
    parser.parse(home())
    depth_left = MAX_DEPTH - 4  # root, data, devices, thermostats above the device
    deep = {"n": 1}
    for _ in range(depth_left):  # the device's dict + depth_left more levels
        deep = {"n": deep}
    text = home().replace('"on": true}', f'"on": {json.dumps(deep)}}}', 1)
    with pytest.raises(PayloadTooLarge, match="deeper"):
        parse_json(text)
    with pytest.raises(PayloadTooLarge, match="deeper"):
        parser.parse(text)
    assert parser.patched == 0
    assert parser.parse(home(43)) == json.loads(home(43))


def test_the_container_cap_holds_for_a_changed_leaf() -> None:
    parser = DeltaParser()
    parser.parse(home())
    text = home().replace('"on": true}', f'"on": [{"[]," * MAX_CONTAINERS}[]]}}', 1)
    with pytest.raises(PayloadTooLarge, match="objects and arrays"):
        parse_json(text)
    with pytest.raises(PayloadTooLarge, match="objects and arrays"):
        parser.parse(text)


def test_the_same_text_again_is_the_same_value() -> None:
    parser = DeltaParser()
    assert parser.parse(home()) is parser.parse(home())


leaves = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
documents = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.dictionaries(st.sampled_from(["x", "y"]), st.dictionaries(st.just("k"), leaves), max_size=2)
    | leaves,
    max_size=3,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(documents, min_size=1, max_size=6), st.booleans())
def test_any_stream_of_texts_reads_as_parse_json(docs: list[Any], compact: bool) -> None:
    separators = (",", ":") if compact else None
    parser = DeltaParser(leaf_depth=3)
    for doc in docs:
        text = json.dumps(doc, separators=separators)
        assert parser.parse(text) == parse_json(text)
        # a near copy: one leaf's text changed in place
        varied = text.replace("1", "12", 1).replace("true", "false", 1)
        assert parser.parse(varied) == parse_json(varied)
