"""Nest web: captured payloads → normalized home, actions → puts, and the simulator's
buckets held against the capture.

The fixtures are verbatim transcriptions of the 2012 web-app capture (seed 002); see
tests/fixtures/nest_web/SOURCES.txt. They use the capture's placeholders for serials.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost.core.commands import (
    Action,
    FailureReason,
    SetCool,
    SetEco,
    SetFanTimer,
    SetHeat,
    SetMode,
    SetPresence,
    SetRange,
)
from roost.core.model import (
    AlarmState,
    BatteryHealth,
    HvacActivity,
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.providers.http import failure_for_status, message_of
from roost.providers.nest_web.buckets import Bucket, BucketSet, PayloadError, parse_objects
from roost.providers.nest_web.encode import EncodeError, encode
from roost.providers.nest_web.normalize import ScheduleEntry, base_mode, normalize, schedule
from roost.simulator import nest_web
from roost.simulator.home import SimHome

FIXTURES = Path(__file__).parent / "fixtures" / "nest_web"
SERIAL = "#DEVICE 2 SERIAL NUMBER#"
STRUCTURE = "#STRUCTURE-GUID#"
NOW = datetime(2012, 1, 8, 16, 0, tzinfo=UTC)


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def captured_buckets(shared: str = "seed-v1-subscribe-response-shared.json") -> dict[str, Any]:
    """A home of the captured `shared.` and `device.` payloads, in a minimal structure."""
    return {
        f"structure.{STRUCTURE}": {"name": "Home", "away": False, "swarm": [f"device.{SERIAL}"]},
        f"device.{SERIAL}": fixture("seed-v1-subscribe-response-device.json")["payload"],
        f"shared.{SERIAL}": fixture(shared)["payload"],
    }


def thermostat(buckets: dict[str, Any]) -> Thermostat:
    home, problems = normalize(buckets, "acct", now=NOW)
    assert problems.found == []
    device = home.devices[SERIAL]
    assert isinstance(device, Thermostat)
    return device


# --- captured payloads → the normalized home ------------------------------------------------


def test_the_captured_setpoint_change_normalizes_to_a_heating_thermostat() -> None:
    t = thermostat(captured_buckets())
    assert t.name == "TWO"
    assert t.structure_id == STRUCTURE
    assert t.mode is ThermostatMode.HEAT  # the 2012 device bucket predates eco
    assert t.heat_setpoint_c == pytest.approx(19.44444)
    assert t.cool_setpoint_c is None
    assert t.ambient_c == pytest.approx(19.98)
    assert t.humidity == 45
    assert t.hvac is HvacActivity.IDLE
    assert (t.can_heat, t.can_cool, t.has_fan) == (True, True, True)
    assert t.online is True  # no track. bucket: assumed online
    # away_temperature_*_enabled are absent from the 2012 bucket: both are taken as on
    assert t.eco_range_c == pytest.approx((14.444444444444445, 32.0))
    assert t.locked is False


def test_the_captured_furnace_start_normalizes_to_heating() -> None:
    t = thermostat(captured_buckets("seed-v1-subscribe-response-shared-heating.json"))
    assert t.hvac is HvacActivity.HEATING
    assert t.heat_setpoint_c == pytest.approx(20.55556)
    assert t.ambient_c == pytest.approx(19.53)


def test_eco_comes_from_the_device_bucket_and_uses_the_away_temperatures() -> None:
    buckets = captured_buckets()
    buckets[f"device.{SERIAL}"] = {**buckets[f"device.{SERIAL}"], "eco": {"mode": "manual-eco"}}
    t = thermostat(buckets)
    assert t.mode is ThermostatMode.ECO
    assert t.heat_setpoint_c == pytest.approx(14.444444444444445)
    assert t.cool_setpoint_c == pytest.approx(32.0)  # can_cool in the captured shared bucket
    assert t.eco_range_c == pytest.approx((14.444444444444445, 32.0))
    assert base_mode(buckets, SERIAL) is ThermostatMode.HEAT  # what eco returns to
    buckets[f"device.{SERIAL}"]["eco"] = {"mode": "schedule"}
    assert thermostat(buckets).mode is ThermostatMode.HEAT


@pytest.mark.parametrize(
    ("kind", "mode", "heat", "cool"),
    [
        ("cool", ThermostatMode.COOL, None, 19.44444),
        ("range", ThermostatMode.HEAT_COOL, 16.66667, 26.66667),
        ("off", ThermostatMode.OFF, None, None),
        ("HEAT", ThermostatMode.HEAT, 19.44444, None),  # the protobuf bridge's upper case
    ],
)
def test_target_temperature_types(
    kind: str, mode: ThermostatMode, heat: float | None, cool: float | None
) -> None:
    buckets = captured_buckets()
    buckets[f"shared.{SERIAL}"] = {**buckets[f"shared.{SERIAL}"], "target_temperature_type": kind}
    t = thermostat(buckets)
    assert t.mode is mode
    assert t.heat_setpoint_c == (pytest.approx(heat) if heat is not None else None)
    assert t.cool_setpoint_c == (pytest.approx(cool) if cool is not None else None)


def test_presence_rooms_track_and_the_fan_timer() -> None:
    buckets = captured_buckets()
    buckets[f"structure.{STRUCTURE}"]["away"] = True
    buckets[f"where.{STRUCTURE}"] = {"wheres": [{"where_id": "w1", "name": "Upstairs"}]}
    fan_until = int(NOW.timestamp()) + 900
    device = buckets[f"device.{SERIAL}"]
    buckets[f"device.{SERIAL}"] = {**device, "where_id": "w1", "fan_timer_timeout": fan_until}
    buckets[f"track.{SERIAL}"] = {"online": False, "last_connection": 1326038279000}
    home, problems = normalize(buckets, "acct", now=NOW)
    assert problems.found == []
    assert home.structures[STRUCTURE] == Structure(
        id=STRUCTURE, name="Home", presence=Presence.AWAY
    )
    t = home.devices[SERIAL]
    assert isinstance(t, Thermostat)
    assert (t.room, t.online, t.fan_timer_active) == ("Upstairs", False, True)
    assert t.fan_timer_until == datetime.fromtimestamp(fan_until, UTC)
    buckets[f"device.{SERIAL}"]["fan_timer_timeout"] = int(NOW.timestamp()) - 1  # expired
    assert thermostat(buckets).fan_timer_active is False


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (0, AlarmState.OK),
        (1, AlarmState.WARNING),
        (2, AlarmState.WARNING),
        (3, AlarmState.EMERGENCY),
        (4, AlarmState.EMERGENCY),  # unknown: read on the cautious side
    ],
)
def test_topaz_statuses(status: int, state: AlarmState) -> None:
    buckets: dict[str, Any] = {
        "structure.s": {"name": "Home", "away": False, "swarm": ["topaz.p1"]},
        "topaz.p1": {"description": "Hallway", "co_status": status, "smoke_status": 0},
    }
    home, _ = normalize(buckets, "acct", now=NOW)
    alarm = home.devices["p1"]
    assert isinstance(alarm, SmokeCoAlarm)
    assert (alarm.name, alarm.co, alarm.smoke) == ("Hallway", state, AlarmState.OK)
    assert alarm.battery is BatteryHealth.OK


def test_an_unreadable_field_makes_only_that_attribute_unknown() -> None:
    good, _ = normalize(captured_buckets(), "acct", now=NOW)
    broken = captured_buckets()
    broken[f"shared.{SERIAL}"] = {**broken[f"shared.{SERIAL}"], "current_temperature": "warm"}
    home, problems = normalize(broken, "acct", now=NOW, previous=good)
    assert [(p.target, p.field, p.kind) for p in problems.found] == [
        (SERIAL, "shared.current_temperature", "wrong type")
    ]
    t = home.devices[SERIAL]
    assert isinstance(t, Thermostat)
    assert t.ambient_c is None
    assert dataclasses.replace(t, ambient_c=good.devices[SERIAL].ambient_c) == good.devices[SERIAL]


def test_a_missing_bucket_keeps_the_devices_previous_form() -> None:
    good, _ = normalize(captured_buckets(), "acct", now=NOW)
    broken = captured_buckets()
    del broken[f"shared.{SERIAL}"]
    home, problems = normalize(broken, "acct", now=NOW, previous=good)
    assert [p.kind for p in problems.found] == ["missing bucket"]
    assert home.devices[SERIAL] == good.devices[SERIAL]  # not removed, not mangled
    alone, _ = normalize(broken, "acct", now=NOW)
    assert SERIAL not in alone.devices


def test_the_captured_schedule_reads_as_set_points_without_continuations() -> None:
    captured = fixture("seed-v1-schedule-snippet.json")["schedule"][SERIAL]
    heat = ThermostatMode.HEAT
    assert schedule(captured, SERIAL) == (
        ScheduleEntry(0, 27900, heat, 14.445, None),
        ScheduleEntry(0, 63000, heat, 20.556, None),
        ScheduleEntry(0, 70200, heat, 14.445, None),
        ScheduleEntry(1, 20700, heat, 18.889, None),
    )
    with pytest.raises(PayloadError):
        schedule({"days": {"0": {"0": {"type": "DRY", "time": 0}}}}, SERIAL)


# --- bucket replies --------------------------------------------------------------------------


def test_bucket_replies_merge_by_revision_and_a_null_value_removes() -> None:
    held = BucketSet()
    held.replace_all(
        parse_objects({"updated_buckets": [v5("shared.a", 1, {"x": 1, "y": 2})]}, "updated_buckets")
    )
    assert held.apply([Bucket("shared.a", 1, 0, {"x": 9})]) == []  # same revision: not news
    assert held.apply([Bucket("shared.a", -7, 0, {"x": 3})]) == ["shared.a"]
    assert held.values() == {"shared.a": {"x": 3, "y": 2}}  # merged key by key
    assert held.subscription() == [
        {"object_key": "shared.a", "object_revision": -7, "object_timestamp": 0}
    ]
    assert held.apply([Bucket("shared.a", 5, 0, None)]) == ["shared.a"]
    assert held.values() == {}


def test_buckets_referred_to_but_not_held_are_missing() -> None:
    held = BucketSet()
    structure = {"swarm": ["device.a", "topaz.b"]}
    held.replace_all([Bucket("structure.s", 1, 0, structure), Bucket("device.a", 1, 0, {})])
    assert held.missing() == frozenset({"topaz.b"})


@pytest.mark.parametrize(
    "reply",
    [
        [],
        {"objects": {}},
        {"objects": [{"object_key": "nodot", "object_revision": 1}]},
        {"objects": [{"object_key": "shared.a", "object_revision": "1"}]},
        {"objects": [{"object_key": "shared.a", "object_revision": 1, "value": [1]}]},
    ],
)
def test_malformed_replies_are_refused(reply: Any) -> None:
    with pytest.raises(PayloadError):
        parse_objects(reply, "objects")


def v5(key: str, revision: int, value: dict[str, Any]) -> dict[str, Any]:
    return {"object_key": key, "object_revision": revision, "object_timestamp": 0, "value": value}


# --- actions → puts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "writes"),
    [
        (SetEco(True), [(f"device.{SERIAL}", {"eco": {"mode": "manual-eco"}})]),
        (SetEco(False), [(f"device.{SERIAL}", {"eco": {"mode": "schedule"}})]),
        (SetMode(ThermostatMode.COOL), [(f"shared.{SERIAL}", {"target_temperature_type": "cool"})]),
        (
            SetMode(ThermostatMode.HEAT_COOL),
            [(f"shared.{SERIAL}", {"target_temperature_type": "range"})],
        ),
        (SetMode(ThermostatMode.ECO), [(f"device.{SERIAL}", {"eco": {"mode": "manual-eco"}})]),
        (SetHeat(18.5), [(f"shared.{SERIAL}", {"target_temperature": 18.5})]),
        (
            SetFanTimer(15),
            [(f"device.{SERIAL}", {"fan_timer_timeout": int(NOW.timestamp()) + 900})],
        ),
        (SetFanTimer(0), [(f"device.{SERIAL}", {"fan_timer_timeout": 0})]),
    ],
)
def test_thermostat_actions_encode_to_bucket_merges(action: Action, writes: list[Any]) -> None:
    t = thermostat(captured_buckets())
    assert encode(action, t, base_mode=ThermostatMode.HEAT, now=NOW) == writes


def test_the_captured_put_is_what_a_heat_setpoint_encodes_to() -> None:
    captured = fixture("seed-v1-put-target-temperature.json")["payload"]
    t = thermostat(captured_buckets())
    [(key, fields)] = encode(SetHeat(18.333333333333336), t, base_mode=None, now=NOW)
    kind, _, serial = key.partition(".")
    assert {kind: {serial: fields}} == captured


def test_leaving_eco_for_a_mode_writes_both_buckets_and_range_setpoints_follow_the_mode() -> None:
    buckets = captured_buckets()
    buckets[f"device.{SERIAL}"] = {**buckets[f"device.{SERIAL}"], "eco": {"mode": "manual-eco"}}
    t = thermostat(buckets)
    assert encode(SetMode(ThermostatMode.OFF), t, base_mode=ThermostatMode.HEAT, now=NOW) == [
        (f"device.{SERIAL}", {"eco": {"mode": "schedule"}}),
        (f"shared.{SERIAL}", {"target_temperature_type": "off"}),
    ]
    writes = encode(SetRange(18, 25), t, base_mode=ThermostatMode.HEAT_COOL, now=NOW)
    assert writes == [
        (f"shared.{SERIAL}", {"target_temperature_low": 18, "target_temperature_high": 25})
    ]
    cool = encode(SetCool(24), t, base_mode=ThermostatMode.HEAT_COOL, now=NOW)
    assert cool == [(f"shared.{SERIAL}", {"target_temperature_high": 24})]


def test_presence_encodes_to_the_structure_bucket() -> None:
    home = Structure(id=STRUCTURE, name="Home")
    [(key, fields)] = encode(SetPresence(Presence.AWAY), home, base_mode=None, now=NOW)
    assert key == f"structure.{STRUCTURE}"
    assert fields == {"away": True, "away_timestamp": int(NOW.timestamp()), "away_setter": 0}


@pytest.mark.parametrize(
    "action", [SetCool(24), SetRange(18, 25), SetPresence(Presence.HOME), SetFanTimer(-1)]
)
def test_actions_that_do_not_apply_are_refused_before_any_put(action: Action) -> None:
    t = thermostat(captured_buckets())  # heat mode, has a fan
    with pytest.raises(EncodeError):
        encode(action, t, base_mode=ThermostatMode.HEAT, now=NOW)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, FailureReason.INVALID),
        (401, FailureReason.UNAUTHORIZED),
        (403, FailureReason.UNAUTHORIZED),
        (404, FailureReason.NOT_FOUND),
        (409, FailureReason.INVALID),
        (429, FailureReason.RATE_LIMITED),
        (503, FailureReason.SERVER_ERROR),
    ],
)
def test_http_errors_map_to_typed_failures(status: int, reason: FailureReason) -> None:
    response = httpx.Response(status, json={"error": "x", "message": "why"})
    result = failure_for_status(response, message_of(response))
    assert (result.ok, result.reason, result.detail) == (False, reason, f"HTTP {status}: why")


# --- the simulator's buckets against the capture --------------------------------------------


def test_the_simulated_shared_bucket_has_exactly_the_captured_fields_and_types() -> None:
    home = SimHome.demo()
    rendered = nest_web.render(home, user_id="1", email="a@b", schedules={}, kept={}, since_ms=0)
    captured = fixture("seed-v1-subscribe-response-shared.json")["payload"]
    for thermostat_id in home.thermostats:
        shared = rendered[f"shared.{thermostat_id}"]
        assert set(shared) == set(captured)
        assert {k: type(v) for k, v in shared.items()} == {
            k: type(v) for k, v in captured.items()
        } | {"target_temperature": float, "target_temperature_low": float}


def test_the_simulated_device_bucket_uses_the_captured_names_and_types() -> None:
    home = SimHome.demo()
    rendered = nest_web.render(home, user_id="1", email="a@b", schedules={}, kept={}, since_ms=0)
    captured = fixture("seed-v1-subscribe-response-device.json")["payload"]
    device = rendered["device.thermostat-living-room"]
    shared_names = set(device) & set(captured)
    assert len(shared_names) >= 15
    for name in shared_names:
        assert isinstance(device[name], type(captured[name])), name


def test_the_captured_schedule_passes_the_simulators_checks() -> None:
    captured = fixture("seed-v1-schedule-snippet.json")["schedule"][SERIAL]
    fields = {k: v for k, v in captured.items() if not k.startswith("$")}
    assert nest_web.checked_schedule({}, fields)["days"] == captured["days"]
