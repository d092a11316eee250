"""The incremental WWN normalizer gives exactly what a full `normalize` gives, put after put,
and keeps the very object of every device whose part of the document did not change."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime

from roost.providers.json_delta import DeltaParser
from roost.providers.nest_wwn.normalize import Normalizer, apply_put, camera_events, normalize
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
