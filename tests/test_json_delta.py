"""The delta parser (providers/json_delta.py) reads each text of a stream exactly as
`parse_json` does, parsing only the leaves that changed, and keeps every parse cap."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.providers.bounds import MAX_CONTAINERS, MAX_DEPTH, PayloadTooLarge, parse_json
from roost.providers.json_delta import DeltaParser, _members


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


def test_a_change_in_one_field_parses_that_field_and_shares_the_others() -> None:
    parser = DeltaParser()
    devices = {"t1": {"humidity": 40, "name": "Room 1", "on": True, "list": [1, 2]}}
    text = json.dumps({"path": "/", "data": {"devices": {"thermostats": devices}}})
    first = parser.parse(text)
    for value in (41.5, 4, 4000.25, 7):
        changed = text.replace('"humidity": 40', f'"humidity": {value}')
        got = parser.parse(changed)
        assert got == json.loads(changed)
        before, after = (
            first["data"]["devices"]["thermostats"]["t1"],
            got["data"]["devices"]["thermostats"]["t1"],
        )
        assert after["list"] is before["list"]  # the other fields were not parsed again
    assert parser.patched == 4


_VALUE = re.compile(  # a number or literal that is a value (after `:`, `,` or `[`)
    r"(?:(?<=[:,\[])|(?<=[:,\[] ))(?:-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null)"
)


def _edits(text: str, picks: list[int], values: list[str]) -> str:
    """`text` with the numbers at the picked places (of those it holds) replaced."""
    spans = [m.span() for m in _VALUE.finditer(text)]
    chosen = sorted({spans[p % len(spans)] for p in picks}) if spans else []
    out, at = [], 0
    for (lo, hi), value in zip(chosen, values, strict=False):
        out += [text[at:lo], value]
        at = hi
    return "".join([*out, text[at:]])


scalars = st.none() | st.booleans() | st.integers(-999, 99999) | st.floats(allow_nan=False)
devices = st.dictionaries(  # object leaves (at depth 2) of several members, as devices are
    st.sampled_from(["a", "b"]),
    st.dictionaries(
        st.sampled_from(["x", "y", "z"]),
        st.dictionaries(st.sampled_from(["m1", "m2", "m3", "m4", "m5"]), scalars | leaves),
        max_size=3,
    ),
    min_size=1,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    devices | documents,
    st.lists(
        st.tuples(
            st.lists(st.integers(0, 50), min_size=1, max_size=4),
            st.lists(st.sampled_from(["0", "12", "-3.5", "1e3", "true", "null", '"x"', "[1]"]),
                     min_size=4, max_size=4),
        ),
        min_size=1,
        max_size=6,
    ),
    st.booleans(),
)  # fmt: skip
def test_several_values_changed_per_text_read_as_parse_json(
    doc: Any, edits: list[tuple[list[int], list[str]]], compact: bool
) -> None:
    """Text after text, a few values changed each time, in the same object leaf or not,
    growing or shrinking: the member and leaf spans stay right from one text to the next."""
    separators = (",", ":") if compact else None
    text = json.dumps(doc, separators=separators)
    parser = DeltaParser(leaf_depth=2)
    assert parser.parse(text) == parse_json(text)
    for picks, values in edits:
        text = _edits(text, picks, values)  # (an edit inside a string may spoil the text)
        assert _outcome(parser.parse, text) == _outcome(parse_json, text)
        _assert_index_is_fresh(parser)


def _assert_index_is_fresh(parser: DeltaParser) -> None:
    """The spans kept after a patch are those a whole parse of the text would index (the
    patch falls back to a whole leaf where a stale span points nowhere: only this sees it)."""
    text = parser._text
    if text is None:
        return
    fresh = DeltaParser(parser._leaf_depth)
    fresh.parse(text)
    assert (list(parser._starts), list(parser._ends)) == (list(fresh._starts), list(fresh._ends))
    for leaf, members in parser._inner.items():
        rebuilt = _members(text, parser._starts[leaf], parser._leaf(leaf))
        if members is None or rebuilt is None:
            assert members is rebuilt
            continue
        assert (list(members.starts), list(members.ends), members.keys) == (
            list(rebuilt.starts),
            list(rebuilt.ends),
            rebuilt.keys,
        )


def _outcome(parse: Any, text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        return type(exc)


def test_edits_name_the_changed_members_of_each_changed_leaf() -> None:
    parser = DeltaParser(leaf_depth=2)
    first = parser.parse('{"d": {"t1": {"h": 40, "n": "a"}, "t2": {"h": 50}}}')
    assert parser.edits is None  # parsed whole
    parser.parse('{"d": {"t1": {"h": 41, "n": "b"}, "t2": {"h": 50}}}')
    assert parser.edits == {("d", "t1"): (first["d"]["t1"], {"h", "n"})}
    assert parser.edits[("d", "t1")][0] is first["d"]["t1"]  # the very last value
    parser.parse('{"d": {"t1": {"h": 41, "n": "b"}, "t2": {"h": 50}}}')
    assert parser.edits == {}  # the same text: nothing changed
    parser.parse('{"d": {"t1": {"h": 41, "n": "b"}, "t2": [1]}}')
    assert parser.edits is not None
    assert parser.edits[("d", "t2")][1] is None  # the leaf read whole: its keys unknown


def test_replaced_holds_each_container_copied_as_it_was() -> None:
    parser = DeltaParser()
    first = parser.parse(home(40))
    assert parser.replaced == {}  # parsed whole
    second = parser.parse(home(41.5))
    thermostats = ("data", "devices", "thermostats")
    copied = {(), ("data",), ("data", "devices"), thermostats, (*thermostats, "t1")}
    assert parser.replaced.keys() == copied
    assert parser.replaced[()] is first
    assert parser.replaced[thermostats] is first["data"]["devices"]["thermostats"]
    assert second["data"]["devices"]["thermostats"] is not parser.replaced[thermostats]
    parser.parse(home(41.5))
    assert parser.replaced == {}  # the same text: nothing copied
    parser.parse(home(41.5, name="Cellar"))
    assert ("data", "devices") not in parser.replaced  # only along the changed path
    assert parser.replaced[("data", "structures")] is second["data"]["structures"]
