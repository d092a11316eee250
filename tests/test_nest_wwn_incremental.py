"""The incremental WWN normalizer gives exactly what a full `normalize` gives, put after put,
and keeps the very object of every device whose part of the document did not change."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.core.model import Change, Home
from roost.providers.json_delta import DeltaParser
from roost.providers.nest_wwn.normalize import (
    _THERMOSTAT_READINGS,
    Normalizer,
    _Reads,
    _thermostat_rest,
    apply_put,
    camera_events,
    normalize,
    put_edits,
)
from roost.providers.readers import Problems
from roost.simulator import nest_wwn
from roost.simulator.home import SimCamera, SimHome, SimSmokeCoAlarm, SimStructure, SimThermostat


def _home() -> SimHome:
    home = SimHome()
    for s in range(2):
        home.add(SimStructure(id=f"s{s}", name=f"Home {s}"))
        for i in range(4):
            home.add(SimThermostat(f"t{s}{i}", f"T {s}{i}", f"s{s}", f"Room {i}"))
        home.add(SimSmokeCoAlarm(f"a{s}", f"Alarm {s}", f"s{s}", "Hall"))
        home.add(SimCamera(f"c{s}", f"Cam {s}", f"s{s}", "Door", is_doorbell=s == 1))
    return home


def _doc(home: SimHome) -> dict[str, object]:
    return json.loads(json.dumps(nest_wwn.document(home, token="t", base_url="http://x")))


def test_whole_document_puts_match_a_full_normalize() -> None:
    home = _home()
    inc = Normalizer("acc")
    rng = random.Random(7)
    previous = inc(_doc(home))
    assert previous == normalize(_doc(home), "acc")
    for step in range(60):
        t = home.thermostats[f"t{rng.randrange(2)}{rng.randrange(4)}"]
        choice = step % 4
        if choice == 0:
            t.humidity = rng.randrange(100)
        elif choice == 1:
            t.mode = rng.choice(["heat", "cool", "eco", "off", "heat-cool"])
        elif choice == 2:
            home.structures[f"s{rng.randrange(2)}"].away = rng.random() < 0.5
        else:
            home.alarms[f"a{rng.randrange(2)}"].co = rng.choice(["ok", "warning"])
        home.changed()
        doc = _doc(home)
        got = inc(doc)
        assert got == normalize(doc, "acc")
        for device_id, device in got.devices.items():
            if device == previous.devices.get(device_id):
                assert device is previous.devices[device_id]
        previous = got


def test_subtree_puts_and_renamed_rooms_match() -> None:
    home = _home()
    inc = Normalizer("acc")
    doc = _doc(home)
    inc(doc)
    doc = apply_put(doc, "/devices/thermostats/t00/humidity", 12)
    assert inc(doc) == normalize(doc, "acc")
    # a `wheres` rename changes the room of devices whose raw dict did not change
    renamed = copy.deepcopy(doc)
    for structure in renamed["structures"].values():
        for where in structure.get("wheres", {}).values():
            where["name"] = where["name"] + " (new)"
    for section in renamed["devices"].values():
        for raw in section.values():
            raw.pop("where_name", None)
    assert inc(renamed) == normalize(renamed, "acc")
    doc = apply_put(renamed, "/devices/cameras/c0", None)
    assert inc(doc) == normalize(doc, "acc")
    assert "c0" not in inc(doc).devices


def test_documents_that_share_unchanged_parts_read_as_fresh_ones() -> None:
    """Through the stream's own parser, each put shares every unchanged section and device
    with the last one (providers/json_delta.py); the normalizer reuses them by identity and
    must still give what a full `normalize` of a fresh parse gives, camera events included."""
    home = _home()
    parser, inc = DeltaParser(), Normalizer("acc")
    rng = random.Random(11)
    previous_shared: dict[str, object] | None = None
    previous_fresh: dict[str, object] | None = None
    at = datetime(2026, 1, 1, tzinfo=UTC)
    reported = 0
    for step in range(80):
        choice = step % 5
        if choice == 0:
            home.thermostats[f"t{rng.randrange(2)}{rng.randrange(4)}"].humidity = step
        elif choice == 1:
            home.structures[f"s{rng.randrange(2)}"].away = rng.random() < 0.5
        elif choice == 2:
            home.structures[f"s{rng.randrange(2)}"].name = f"Home {step}"
        elif choice == 3:
            home.camera_event(f"c{rng.randrange(2)}", person=rng.random() < 0.5)
        else:
            home.alarms[f"a{rng.randrange(2)}"].co = rng.choice(["ok", "warning"])
        home.changed()
        text = json.dumps({"path": "/", "data": nest_wwn.document(home, token="t", base_url="x")})
        shared = apply_put(previous_shared, "/", parser.parse(text)["data"])
        fresh = json.loads(text)["data"]
        assert inc(shared) == normalize(fresh, "acc")
        found = camera_events(previous_shared, shared, "acc", at=at)
        expected = camera_events(previous_fresh, fresh, "acc", at=at)
        assert [(type(e), e.device, e.vendor_id) for e in found] == [
            (type(e), e.device, e.vendor_id) for e in expected
        ]
        reported += len(found)
        previous_shared, previous_fresh = shared, fresh
    assert parser.patched > 60
    assert reported >= 16  # each camera event of the loop, one kind or two


# ---- a changed device: kept, its readings read again, or built again ----------------------

_REMOVE = object()
_ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 120),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["heat", "cool", "eco", "off", "heating", "cooling", "x", ""]),
    st.just({"nested": True}),
    st.just([1]),
)


def _thermostat_doc() -> dict[str, Any]:
    return _doc(_home())


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["t00", "t01", "t10"]),
            st.sampled_from(
                [*_THERMOSTAT_READINGS, "hvac_mode", "target_temperature_c", "is_locked",
                 "fan_timer_active", "where_name", "name", "is_online",
                 "last_connection", "brand_new_field"]
            ),
            _ODD | st.just(_REMOVE),
        ),
        min_size=1,
        max_size=12,
    )
)  # fmt: skip
def test_any_field_edits_match_a_full_normalize_with_the_same_problems(
    edits: list[tuple[str, str, Any]],
) -> None:
    """Put after put, whichever fields change to whatever values (a `true` for a `1`, a
    nested object, a key removed): the incremental result and the problems of each device
    it read again are those of a full normalize. (An unreadable `structure_id` keeps the
    held device by design, where a full normalize leaves it out: not drawn here.)"""
    doc = _thermostat_doc()
    inc = Normalizer("acc")
    previous = inc(doc, Problems())
    for device_id, key, value in edits:
        doc = copy.deepcopy(doc)
        raw = doc["devices"]["thermostats"][device_id]
        if value is _REMOVE:
            raw.pop(key, None)
        else:
            raw[key] = value
        got_problems, full_problems = Problems(), Problems()
        got = inc(doc, got_problems)
        assert got == normalize(doc, "acc", full_problems)
        if inc.readings is not None:  # what changed, as changes: the last home patched
            assert _patched(previous, inc.readings) == got
        previous = got
        assert got_problems.read <= full_problems.read
        for target in got_problems.read:
            assert _found(got_problems, target) == _found(full_problems, target)


def _patched(home: Home, changes: list[Change]) -> Home:
    devices = dict(home.devices)
    for c in changes:
        devices[c.target] = dataclasses.replace(devices[c.target], **{c.attribute: c.value})  # type: ignore[type-var]
    return Home(home.account, dict(home.structures), devices)


def _found(problems: Problems, target: str) -> list[tuple[str, str, str]]:
    return sorted((p.field, p.kind, p.value) for p in problems.found if p.target == target)


def test_a_true_that_became_a_1_is_a_change() -> None:
    """`==` calls them equal; the reader does not (`can_heat: 1` is the wrong type)."""
    doc = _thermostat_doc()
    inc = Normalizer("acc")
    assert inc(doc).devices["t00"].can_heat is True  # type: ignore[attr-defined]
    doc = copy.deepcopy(doc)
    doc["devices"]["thermostats"]["t00"]["can_heat"] = 1
    problems = Problems()
    assert inc(doc, problems).devices["t00"].can_heat is None  # type: ignore[attr-defined]
    assert [(p.field, p.kind) for p in problems.found] == [("can_heat", "wrong type")]


def test_a_field_roost_does_not_read_keeps_the_very_device() -> None:
    doc = _thermostat_doc()
    inc = Normalizer("acc")
    before = inc(doc).devices["t00"]
    doc = copy.deepcopy(doc)
    doc["devices"]["thermostats"]["t00"]["last_connection"] = "2030-01-01T00:00:00.000Z"
    assert inc(doc).devices["t00"] is before
    doc = copy.deepcopy(doc)
    doc["devices"]["thermostats"]["t00"]["humidity"] = 61
    after = inc(doc).devices["t00"]
    assert after.humidity == 61.0  # type: ignore[attr-defined]
    assert after == dataclasses.replace(before, humidity=61.0)  # type: ignore[type-var]


def test_only_its_reading_reads_a_reading_field() -> None:
    """A reading's key may be read by nothing else of the thermostat's build: else a change
    of it alone would leave another attribute stale."""
    raw = _thermostat_doc()["devices"]["thermostats"]["t00"]
    for mode in ("heat", "cool", "heat-cool", "eco", "off"):
        for flags in (False, True):
            recorded = _Reads({**raw, "hvac_mode": mode, "is_locked": flags,
                               "fan_timer_active": flags})  # fmt: skip
            _thermostat_rest("s0", Problems().fields(recorded, "t00"), {})
            read = recorded.keys_read()
            assert read is not None
            assert read.isdisjoint(_THERMOSTAT_READINGS), read & _THERMOSTAT_READINGS.keys()


# ---- the parser's edits: the changed keys without comparing the values again --------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["t00", "t01", "t10"]),
                st.sampled_from([*_THERMOSTAT_READINGS, "hvac_mode", "name", "last_connection"]),
                _ODD,
            ),
            min_size=1,
            max_size=3,
        ),
        min_size=1,
        max_size=10,
    )
)
def test_puts_read_through_the_parsers_edits_match_a_full_normalize(
    puts: list[list[tuple[str, str, Any]]],
) -> None:
    """Whole-document puts as text, a few fields changed in each: read by the `DeltaParser`
    whose edits name the changed keys, the normalizer gives what a full normalize gives,
    with the same problems for each device it read again."""
    doc = _thermostat_doc()
    parser, inc = DeltaParser(), Normalizer("acc")
    previous = inc(parser.parse(json.dumps({"path": "/", "data": doc}))["data"], Problems())
    for changes in puts:
        doc = copy.deepcopy(doc)
        for device_id, key, value in changes:
            doc["devices"]["thermostats"][device_id][key] = value
        patched = parser.patched
        payload = parser.parse(json.dumps({"path": "/", "data": doc}))
        edits = put_edits(payload["path"], parser.edits, parser.replaced)
        assert (edits is not None) == (parser.patched > patched)  # known when read by leaves
        got_problems, full_problems = Problems(), Problems()
        got = inc(apply_put(None, "/", payload["data"]), got_problems, edits)
        assert got == normalize(doc, "acc", full_problems)
        if inc.readings is not None:
            assert _patched(previous, inc.readings) == got
        previous = got
        for target in got_problems.read:
            assert _found(got_problems, target) == _found(full_problems, target)


def test_edits_are_taken_only_for_the_very_raw_object_held() -> None:
    """Edits that name another object than the one held (a put the normalizer never saw
    came between) are not believed: the keys are compared."""
    doc = _thermostat_doc()
    inc = Normalizer("acc")
    inc(doc)
    doc = copy.deepcopy(doc)
    doc["devices"]["thermostats"]["t00"]["humidity"] = 61
    stale = ({"humidity": 61}, {"last_connection"})  # not the raw object held for t00
    got = inc(doc, Problems(), {"thermostats": ({}, {"t00": stale})})
    assert got.devices["t00"].humidity == 61.0  # type: ignore[attr-defined]
    # The held raw object with the right keys: believed (it names only what changed).
    held = doc["devices"]["thermostats"]["t00"]
    doc = copy.deepcopy(doc)
    doc["devices"]["thermostats"]["t00"]["humidity"] = 62
    got = inc(doc, Problems(), {"thermostats": ({}, {"t00": (held, {"humidity"})})})
    assert got.devices["t00"].humidity == 62.0  # type: ignore[attr-defined]


def test_only_the_named_devices_are_read_where_the_section_is_the_one_held() -> None:
    """Edits whose section mapping is the very one held name every device that changed:
    the others are not read again (an unreadable one, skipped, is not rebuilt on every put,
    so a changed reading stays a patch). Another section mapping: every device is looked at."""
    doc = _thermostat_doc()
    doc["devices"]["thermostats"]["t02"] = {"device_id": "t02", "humidity": 5}  # no structure
    inc = Normalizer("acc")
    first = inc(doc)
    assert "t02" not in first.devices
    held = doc["devices"]["thermostats"]
    new = _with_thermostats(doc, {**held, "t00": {**held["t00"], "humidity": 61}})
    named = {"t00": (held["t00"], {"humidity"})}
    got = inc(new, Problems(), {"thermostats": (held, named)})
    assert got == normalize(new, "acc")
    assert inc.readings == [Change("t00", "humidity", 61.0)]
    # A mapping that is not the one held: the section is read whole (t02 is tried again).
    held = new["devices"]["thermostats"]
    newer = _with_thermostats(new, {**held, "t00": {**held["t00"], "humidity": 62}})
    named = {"t00": (held["t00"], {"humidity"})}
    got = inc(newer, Problems(), {"thermostats": (dict(held), named)})
    assert got == normalize(newer, "acc")
    assert inc.readings is None


def _with_thermostats(doc: dict[str, Any], thermostats: dict[str, Any]) -> dict[str, Any]:
    """`doc` with these thermostats, sharing everything else (as the stream parser does)."""
    return {**doc, "devices": {**doc["devices"], "thermostats": thermostats}}


def test_a_device_that_came_or_went_is_more_than_readings() -> None:
    """Puts as WWN sends them (what did not change is the very same object)."""
    doc = _thermostat_doc()
    inc = Normalizer("acc")
    inc(doc)
    assert inc.readings is None  # the first picture
    doc = apply_put(doc, "/devices/thermostats/t00/humidity", 61)
    inc(doc)
    assert inc.readings == [Change("t00", "humidity", 61.0)]
    gone = doc["devices"]["thermostats"]["t01"]
    doc = apply_put(doc, "/devices/thermostats/t01", None)
    inc(doc)
    assert inc.readings is None
    doc = apply_put(doc, "/devices/thermostats/t01", gone)
    inc(doc)
    assert inc.readings is None
    doc = apply_put(doc, "/structures/s0/away", "away")
    inc(doc)
    assert inc.readings is None
    doc = apply_put(doc, "/devices/thermostats/t00/last_connection", "2030-01-01T00:00:00Z")
    inc(doc)
    assert inc.readings == []  # nothing roost reads
