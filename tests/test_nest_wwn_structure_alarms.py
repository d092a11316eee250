"""A WWN structure's own smoke/CO states (`co_alarm_state`, `smoke_alarm_state`) stand in as
one alarm device of it while none of its Protect devices is visible (a token without the
Protect permission), read as a device's states are; never beside a visible alarm device.
From the real WWN fixture, mutated."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from roost.core.model import AlarmState, Home, SmokeCoAlarm
from roost.providers.json_delta import DeltaParser
from roost.providers.nest_wwn.normalize import Normalizer, apply_put, normalize, put_edits
from roost.providers.readers import Problems

FIXTURE = Path(__file__).parent / "fixtures" / "nest_wwn" / "jtsiros-apiResponse.json"
HOME = "xYylA-lypQl5FHuJj2pY_JU3k-aKvEOT3oUEV_Nu8u85w_hO-s4xRg"
STAND_IN = f"{HOME}:alarms"
THERMOSTAT = "JP2FgJUZqqAXUBfYYWVUY_VfehTNCJA_"


def _fixture() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(FIXTURE.read_text())
    return doc


def _without_protects(co: Any = "ok", smoke: Any = "ok") -> dict[str, Any]:
    """The fixture as a token without the Protect permission sees it: the structure still
    names its alarm and carries its states; `devices` has no smoke_co_alarms."""
    doc = _fixture()
    del doc["devices"]["smoke_co_alarms"]
    doc["structures"][HOME]["co_alarm_state"] = co
    doc["structures"][HOME]["smoke_alarm_state"] = smoke
    return doc


def _stand_in(home: Home) -> SmokeCoAlarm:
    alarm = home.devices[STAND_IN]
    assert isinstance(alarm, SmokeCoAlarm)
    return alarm


def test_the_structure_states_stand_in_when_no_alarm_device_is_visible() -> None:
    alarm = _stand_in(normalize(_without_protects(co="emergency", smoke="warning"), "acct"))
    assert (alarm.co, alarm.smoke) == (AlarmState.EMERGENCY, AlarmState.WARNING)
    assert (alarm.name, alarm.structure_id) == ("Home 1 alarms", HOME)


def test_a_visible_alarm_device_showing_the_alarm_speaks_for_its_structure() -> None:
    doc = _fixture()
    doc["structures"][HOME]["co_alarm_state"] = "emergency"
    (device,) = doc["devices"]["smoke_co_alarms"].values()
    device["co_alarm_state"] = "emergency"
    home = normalize(doc, "acct")
    assert STAND_IN not in home.devices  # no second push
    assert sum(isinstance(d, SmokeCoAlarm) for d in home.devices.values()) == 1


def _beside_a_hidden_one(co: str = "ok", visible_co: str = "ok", smoke: str = "ok") -> Any:
    """Two Protects, the token sees one: the structure names both and counts both."""
    doc = _fixture()
    structure = doc["structures"][HOME]
    structure["smoke_co_alarms"] = [*structure["smoke_co_alarms"], "hidden-protect"]
    structure["co_alarm_state"], structure["smoke_alarm_state"] = co, smoke
    (device,) = doc["devices"]["smoke_co_alarms"].values()
    device["co_alarm_state"] = visible_co
    return doc


def test_the_structure_state_counts_beside_a_visible_alarm_when_it_says_more() -> None:
    alarm = _stand_in(normalize(_beside_a_hidden_one(co="emergency", visible_co="warning"), "a"))
    assert (alarm.co, alarm.smoke) == (AlarmState.EMERGENCY, AlarmState.OK)
    alarm = _stand_in(normalize(_beside_a_hidden_one(smoke="warning", co="warning"), "a"))
    assert (alarm.co, alarm.smoke) == (AlarmState.WARNING, AlarmState.WARNING)
    both_warn = _beside_a_hidden_one(smoke="warning", co="warning", visible_co="warning")
    alarm = _stand_in(normalize(both_warn, "a"))
    assert (alarm.co, alarm.smoke) == (AlarmState.OK, AlarmState.WARNING)  # CO: no 2nd push


def test_beside_a_visible_alarm_the_stand_in_holds_until_the_structure_clears() -> None:
    """Put by put: the visible Protect catching up with the structure's emergency is no
    "cleared" of the structure's (which a rule would push); the structure clearing is,
    once, and the stand-in is gone after it."""
    inc = Normalizer("acct")
    assert STAND_IN not in inc(_beside_a_hidden_one()).devices
    held = _stand_in(inc(_beside_a_hidden_one(co="emergency", visible_co="warning")))
    assert held.co is AlarmState.EMERGENCY
    assert inc.readings is None
    caught_up = _stand_in(inc(_beside_a_hidden_one(co="emergency", visible_co="emergency")))
    assert caught_up is held  # no change at all: no event
    cleared = _stand_in(inc(_beside_a_hidden_one()))
    assert (cleared.co, cleared.smoke) == (AlarmState.OK, AlarmState.OK)
    doc = _beside_a_hidden_one()
    doc["structures"][HOME]["away"] = "away"
    assert STAND_IN not in inc(doc).devices


def test_after_a_restart_the_stand_in_holds_and_clears_from_its_recalled_last_word() -> None:
    """A new normalizer (roost restarted) told the stand-in's last word by the restored
    home: the visible Protect having caught up meanwhile is no "cleared" (and no vanished
    alarm), and the structure clearing is reported. Without it the stand-in was dropped."""
    before = _stand_in(Normalizer("acct")(_beside_a_hidden_one(co="emergency")))
    restored = Home("acct", {}, {STAND_IN: before})
    inc = Normalizer("acct")
    inc.recall(restored)
    caught_up = _stand_in(inc(_beside_a_hidden_one(co="emergency", visible_co="emergency")))
    assert caught_up.co is AlarmState.EMERGENCY
    cleared = _stand_in(inc(_beside_a_hidden_one()))
    assert (cleared.co, cleared.smoke) == (AlarmState.OK, AlarmState.OK)
    late = Normalizer("acct")
    late(_beside_a_hidden_one())
    late.recall(restored)  # only before the first document: a live memory is not replaced
    assert STAND_IN not in late(_beside_a_hidden_one()).devices


def test_the_alarm_named_by_the_structure_but_absent_from_devices() -> None:
    doc = _fixture()
    doc["devices"]["smoke_co_alarms"] = {}
    doc["structures"][HOME]["co_alarm_state"] = "emergency"
    assert _stand_in(normalize(doc, "acct")).co is AlarmState.EMERGENCY


def test_a_structure_reporting_no_alarm_state_has_no_stand_in() -> None:
    doc = _without_protects()
    del doc["structures"][HOME]["co_alarm_state"]
    del doc["structures"][HOME]["smoke_alarm_state"]
    assert STAND_IN not in normalize(doc, "acct").devices


@pytest.mark.parametrize(
    ("raw", "expected", "noted"),
    [
        ("EMERGENCY", AlarmState.EMERGENCY, False),  # folded, as a device's state is
        ("alarm", None, True),  # unknown: unreadable, which the guards take as an alarm
        (None, None, False),  # null: unknown too
        (3, None, True),
    ],
)
def test_odd_structure_states_are_read_as_a_devices_are(
    raw: Any, expected: AlarmState | None, noted: bool
) -> None:
    problems = Problems()
    alarm = _stand_in(normalize(_without_protects(co=raw), "acct", problems))
    assert alarm.co is expected
    assert alarm.smoke is AlarmState.OK
    assert any(p.target == HOME and p.field == "co_alarm_state" for p in problems.found) is noted
    doc = _fixture()
    (device_id, device), *_ = doc["devices"]["smoke_co_alarms"].items()
    device["co_alarm_state"] = raw
    read_from_device = normalize(doc, "acct").devices[device_id]
    assert isinstance(read_from_device, SmokeCoAlarm)
    assert read_from_device.co is alarm.co


def test_a_structure_alarm_change_is_never_a_readings_patch() -> None:
    """Whole-document puts through the stream parser: the structure's CO going to emergency,
    alone or with a thermostat reading in the same put, is read (the picture, not a patch of
    readings that would leave it out), exactly as a full normalize reads it."""
    parser, inc = DeltaParser(), Normalizer("acct")
    doc = _without_protects()

    def put(doc: dict[str, Any]) -> Home:
        payload = parser.parse(json.dumps({"path": "/", "data": doc}))
        home = inc(payload["data"], Problems(), put_edits("/", parser.edits, parser.replaced))
        assert home == normalize(doc, "acct")
        return home

    assert _stand_in(put(doc)).co is AlarmState.OK
    doc = copy.deepcopy(doc)
    doc["devices"]["thermostats"][THERMOSTAT]["humidity"] = 61
    put(doc)
    assert inc.readings is not None  # a reading alone is a patch: the fast path is live
    for change in ("alone", "with a reading"):
        doc = copy.deepcopy(doc)
        doc["structures"][HOME]["co_alarm_state"] = "emergency"
        if change == "with a reading":
            doc["devices"]["thermostats"][THERMOSTAT]["humidity"] = 62
        assert _stand_in(put(doc)).co is AlarmState.EMERGENCY, change
        assert inc.readings is None, change
        doc = copy.deepcopy(doc)
        doc["structures"][HOME]["co_alarm_state"] = "ok"
        assert _stand_in(put(doc)).co is AlarmState.OK, change


def test_the_stand_in_comes_and_goes_with_the_alarm_devices() -> None:
    """Put by put (subtree puts too): the Protect devices vanishing brings the stand-in,
    their return (with nothing the structure says more) takes it away; each result as a
    full normalize gives it."""
    inc = Normalizer("acct")
    doc = _fixture()
    alarms = doc["devices"]["smoke_co_alarms"]
    assert STAND_IN not in inc(doc).devices
    steps = [
        ("/devices/smoke_co_alarms", None, True),
        ("/structures/" + HOME + "/co_alarm_state", "warning", True),
        ("/structures/" + HOME + "/co_alarm_state", "ok", True),
        ("/devices/smoke_co_alarms", alarms, False),
    ]
    for path, data, present in steps:
        doc = apply_put(doc, path, data)
        home = inc(doc)
        assert home == normalize(doc, "acct")
        assert (STAND_IN in home.devices) is present, path
        assert inc.readings is None, path
    doc = apply_put(doc, "/devices/smoke_co_alarms", None)
    held = _stand_in(inc(doc))
    doc = apply_put(doc, "/structures/" + HOME + "/away", "away")  # not an alarm change
    assert _stand_in(inc(doc)) is held  # the very same object: a cheap diff
