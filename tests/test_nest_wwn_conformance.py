"""Works with Nest: real payloads → normalized home, actions → writes, HTTP errors → failures.

The fixtures are verbatim copies of the jtsiros/nest test data (the Nest developer-simulator
sample document); see tests/fixtures/nest_wwn/SOURCES.txt.
"""

from __future__ import annotations

import copy
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
from roost.core.events import Motion, Person, Sound
from roost.core.model import (
    AlarmState,
    BatteryHealth,
    Camera,
    Doorbell,
    HvacActivity,
    Presence,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.providers.http import parse_retry_after, transport_failure
from roost.providers.nest_wwn.encode import EncodeError, encode
from roost.providers.nest_wwn.normalize import (
    PayloadError,
    apply_put,
    camera_events,
    normalize,
    previous_mode,
)
from roost.providers.nest_wwn.provider import write_failure
from roost.providers.readers import Problems

FIXTURES = Path(__file__).parent / "fixtures" / "nest_wwn"
STRUCTURE = "xYylA-lypQl5FHuJj2pY_JU3k-aKvEOT3oUEV_Nu8u85w_hO-s4xRg"
FAMILY_ROOM = "JP2FgJUZqqAXUBfYYWVUY_VfehTNCJA_"
DEN = "JP2FgJUZqqBppN16wdLGxvVfehTNCJA_"
PROTECT = "2y2eUoaaXxBij4O1rxoiGfVfehTNCJA_"
CAMERA = "kphN5lNgHsDtoJkfKnDURMABSChmjsFcjoGuBimqasah81-lE93RiA"
AT = datetime(2026, 1, 1, tzinfo=UTC)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def document_with(section: str, device: dict[str, Any]) -> dict[str, Any]:
    return {"devices": {section: {device["device_id"]: device}}}


def thermostat(**overrides: Any) -> Thermostat:
    raw = load("jtsiros-device.json") | overrides
    device = normalize(document_with("thermostats", raw), "a").devices[FAMILY_ROOM]
    assert isinstance(device, Thermostat)
    return device


# --- normalize: the full sample document ---------------------------------------------------


def test_api_response_structure() -> None:
    home = normalize(load("jtsiros-apiResponse.json"), "acct")
    assert home.account == "acct"
    assert home.structures == {
        STRUCTURE: Structure(
            id=STRUCTURE, name="Home 1", presence=Presence.HOME, time_zone="America/Los_Angeles"
        )
    }
    assert set(home.devices) == {FAMILY_ROOM, DEN, PROTECT, CAMERA}


def test_api_response_heat_thermostat() -> None:
    device = normalize(load("jtsiros-apiResponse.json"), "acct").devices[FAMILY_ROOM]
    assert device == Thermostat(
        id=FAMILY_ROOM,
        name="Family Room (ADCD)",
        structure_id=STRUCTURE,
        room="Family Room",
        online=True,
        mode=ThermostatMode.HEAT,
        heat_setpoint_c=20.0,
        cool_setpoint_c=None,
        ambient_c=21.0,
        humidity=50.0,
        hvac=HvacActivity.IDLE,
        can_heat=True,
        can_cool=True,
        has_fan=True,
        fan_timer_active=False,
        fan_timer_until=None,
        emergency_heat=False,
        allowed_range_c=(9.0, 32.0),
        locked=False,
        locked_range_c=None,
        eco_range_c=(12.5, 24.0),
    )


def test_api_response_heat_cool_thermostat() -> None:
    device = normalize(load("jtsiros-apiResponse.json"), "acct").devices[DEN]
    assert isinstance(device, Thermostat)
    assert (device.name, device.room) == ("Den (3A8E)", "Den")
    assert device.mode is ThermostatMode.HEAT_COOL
    assert (device.heat_setpoint_c, device.cool_setpoint_c) == (19.0, 26.0)


def test_api_response_smoke_co_alarm_and_camera() -> None:
    home = normalize(load("jtsiros-apiResponse.json"), "acct")
    assert home.devices[PROTECT] == SmokeCoAlarm(
        id=PROTECT,
        name="Backyard (0305)",
        structure_id=STRUCTURE,
        room="Backyard",
        online=True,
        smoke=AlarmState.OK,
        co=AlarmState.OK,
        battery=BatteryHealth.OK,
    )
    camera = home.devices[CAMERA]
    assert type(camera) is Camera
    assert (camera.name, camera.room, camera.streaming) == ("Den (dbec)", "Den", False)


# --- normalize: the single-device fixtures -------------------------------------------------


def test_device_fixture_at_its_sub_path() -> None:
    raw = load("jtsiros-device.json")
    document = apply_put(None, f"/devices/thermostats/{FAMILY_ROOM}", raw)
    device = normalize(document, "a").devices[FAMILY_ROOM]
    assert isinstance(device, Thermostat)
    assert (device.name, device.mode, device.heat_setpoint_c) == (
        "Family Room (ADCD)",
        ThermostatMode.HEAT,
        20.0,
    )


def test_camera_fixture() -> None:
    raw = load("jtsiros-camera.json")
    camera = normalize(document_with("cameras", raw), "a").devices[CAMERA]
    assert camera == Camera(
        id=CAMERA, name="Den (dbec)", structure_id=STRUCTURE, room="Den", streaming=False
    )


def test_camera_marked_as_doorbell() -> None:
    raw = load("jtsiros-camera.json") | {"is_doorbell": True}
    assert type(normalize(document_with("cameras", raw), "a").devices[CAMERA]) is Doorbell


def test_smoke_co_alarm_fixture_and_alarm_states() -> None:
    raw = load("jtsiros-smokecoalarm.json")
    alarm = normalize(document_with("smoke_co_alarms", raw), "a").devices[PROTECT]
    assert isinstance(alarm, SmokeCoAlarm)
    assert (alarm.name, alarm.room, alarm.smoke, alarm.co) == (
        "Backyard (0305)",
        "Backyard",
        AlarmState.OK,
        AlarmState.OK,
    )
    raw |= {"co_alarm_state": "emergency", "smoke_alarm_state": "warning"}
    raw |= {"battery_health": "replace", "is_online": False}
    alarm = normalize(document_with("smoke_co_alarms", raw), "a").devices[PROTECT]
    assert isinstance(alarm, SmokeCoAlarm)
    assert (alarm.co, alarm.smoke) == (AlarmState.EMERGENCY, AlarmState.WARNING)
    assert (alarm.battery, alarm.online) == (BatteryHealth.REPLACE, False)


@pytest.mark.parametrize(
    ("mode", "heat", "cool"),
    [
        ("heat", 20.0, None),
        ("cool", None, 20.0),
        ("heat-cool", 19.0, 26.0),
        ("eco", 12.5, 24.0),
        ("off", None, None),
    ],
)
def test_active_setpoints_per_mode(mode: str, heat: float | None, cool: float | None) -> None:
    device = thermostat(hvac_mode=mode)
    assert device.mode == ThermostatMode(mode)
    assert (device.heat_setpoint_c, device.cool_setpoint_c) == (heat, cool)
    assert device.eco_range_c == (12.5, 24.0)


@pytest.mark.parametrize(
    ("state", "activity"),
    [("heating", HvacActivity.HEATING), ("cooling", HvacActivity.COOLING), ("off", "idle")],
)
def test_hvac_state(state: str, activity: HvacActivity) -> None:
    assert thermostat(hvac_state=state).hvac == activity


def test_fan_timer_until() -> None:
    assert thermostat(fan_timer_active=True).fan_timer_until is None  # 1970 epoch
    running = thermostat(fan_timer_active=True, fan_timer_timeout="2026-03-01T10:15:00.000Z")
    assert running.fan_timer_until == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    stopped = thermostat(fan_timer_active=False, fan_timer_timeout="2026-03-01T10:15:00.000Z")
    assert stopped.fan_timer_until is None


def test_lock_and_emergency_heat() -> None:
    device = thermostat(is_locked=True, is_using_emergency_heat=True, is_online=False)
    assert (device.locked, device.locked_range_c) == (True, (20.0, 22.0))
    assert device.emergency_heat is True
    assert device.online is False


@pytest.mark.parametrize(
    ("away", "presence"),
    [("home", Presence.HOME), ("away", Presence.AWAY), ("auto-away", Presence.AWAY)],
)
def test_structure_presence(away: str, presence: Presence) -> None:
    document = load("jtsiros-apiResponse.json")
    document["structures"][STRUCTURE]["away"] = away
    assert normalize(document, "a").structures[STRUCTURE].presence is presence


def test_document_missing_optional_keys_still_normalizes() -> None:
    sparse = {
        "devices": {
            "thermostats": {"t1": {"structure_id": "s1", "where_id": "w1"}},
            "smoke_co_alarms": {"p1": {"structure_id": "s1"}},
        },
        "structures": {"s1": {"wheres": {"w1": {"where_id": "w1", "name": "Hall"}}}},
    }
    home = normalize(sparse, "a")
    t1 = home.devices["t1"]
    assert isinstance(t1, Thermostat)
    assert (t1.name, t1.room, t1.online) == ("t1", "Hall", True)
    assert (t1.mode, t1.heat_setpoint_c, t1.ambient_c, t1.eco_range_c) == ("off", None, None, None)
    assert home.devices["p1"] == SmokeCoAlarm(id="p1", name="p1", structure_id="s1")
    assert home.structures["s1"] == Structure(id="s1", name="s1", presence=Presence.HOME)
    assert normalize({}, "a").devices == {}
    assert normalize({"metadata": {}}, "a").structures == {}


def test_fixture_device_without_optional_keys() -> None:
    raw = load("jtsiros-device.json")
    for key in ("humidity", "where_name", "eco_temperature_low_c", "fan_timer_timeout", "label"):
        del raw[key]
    device = normalize(document_with("thermostats", raw), "a").devices[FAMILY_ROOM]
    assert isinstance(device, Thermostat)
    assert (device.humidity, device.room, device.eco_range_c) == (None, None, None)
    assert device.heat_setpoint_c == 20.0


@pytest.mark.parametrize("document", [[], "garbage", {"devices": []}])
def test_a_document_of_the_wrong_shape_raises_payload_error(document: Any) -> None:
    with pytest.raises(PayloadError):
        normalize(document, "a")


@pytest.mark.parametrize(
    ("document", "target", "field", "attribute"),
    [
        (
            {"devices": {"thermostats": {"t1": {"structure_id": "s", "hvac_mode": "turbo"}}}},
            "t1",
            "hvac_mode",
            "mode",
        ),
        (
            {
                "devices": {
                    "thermostats": {"t1": {"structure_id": "s", "ambient_temperature_c": "x"}}
                }
            },
            "t1",
            "ambient_temperature_c",
            "ambient_c",
        ),
        (
            {"devices": {"thermostats": {"t1": {"structure_id": "s", "can_heat": "yes"}}}},
            "t1",
            "can_heat",
            "can_heat",
        ),
        (
            {"devices": {"smoke_co_alarms": {"p1": {"structure_id": "s", "co_alarm_state": "?"}}}},
            "p1",
            "co_alarm_state",
            "co",
        ),
        ({"structures": {"s1": {"away": "on holiday"}}}, "s1", "away", "presence"),
    ],
)
def test_an_unreadable_field_makes_only_its_attribute_unknown(
    document: Any, target: str, field: str, attribute: str
) -> None:
    problems = Problems()
    home = normalize(document, "a", problems)
    entity = home.devices.get(target) or home.structures[target]
    assert getattr(entity, attribute) is None
    assert [(p.target, p.field) for p in problems.found] == [(target, field)]


@pytest.mark.parametrize(
    "document",
    [
        {"structures": {"s1": "nope"}},
        {"devices": {"thermostats": {"t1": {"hvac_mode": "heat"}}}},  # no structure_id
    ],
)
def test_an_unreadable_new_entity_is_left_out_and_noted(document: Any) -> None:
    problems = Problems()
    home = normalize(document, "a", problems)
    assert not home.devices
    assert not home.structures
    assert problems.found


# --- stream helpers ------------------------------------------------------------------------


def test_apply_put_replaces_the_subtree_at_a_sub_path() -> None:
    document = load("jtsiros-apiResponse.json")
    original = copy.deepcopy(document)
    changed = load("jtsiros-device.json") | {"hvac_mode": "eco", "ambient_temperature_c": 23.5}
    del changed["humidity"]
    updated = apply_put(document, f"/devices/thermostats/{FAMILY_ROOM}", changed)
    assert updated["devices"]["thermostats"][FAMILY_ROOM] == changed
    assert "humidity" not in updated["devices"]["thermostats"][FAMILY_ROOM]  # replaced, not merged
    assert updated["devices"]["thermostats"][DEN] == document["devices"]["thermostats"][DEN]
    assert document == original  # the held document is not changed in place
    device = normalize(updated, "a").devices[FAMILY_ROOM]
    assert isinstance(device, Thermostat)
    assert (device.mode, device.ambient_c, device.humidity) == ("eco", 23.5, None)


def test_apply_put_root_field_and_removal() -> None:
    document = load("jtsiros-apiResponse.json")
    assert apply_put(document, "/", {"structures": {}}) == {"structures": {}}
    away = apply_put(document, f"/structures/{STRUCTURE}/away", "away")
    assert normalize(away, "a").structures[STRUCTURE].presence is Presence.AWAY
    removed = apply_put(document, f"/devices/cameras/{CAMERA}", None)
    assert CAMERA not in normalize(removed, "a").devices
    with pytest.raises(PayloadError):
        apply_put(document, "/", ["not", "a", "document"])


def _with_last_event(document: dict[str, Any], **event: Any) -> dict[str, Any]:
    camera = document["devices"]["cameras"][CAMERA] | {"last_event": event}
    return apply_put(document, f"/devices/cameras/{CAMERA}", camera)


def test_camera_events_reported_once() -> None:
    base = load("jtsiros-apiResponse.json")
    start = "2017-11-22T05:42:28.360Z"
    first = _with_last_event(base, has_motion=True, has_person=True, start_time=start)
    found = camera_events(base, first, "a", at=AT)
    assert [type(e) for e in found] == [Motion, Person]
    assert all(e.started_at == datetime(2017, 11, 22, 5, 42, 28, 360000, tzinfo=UTC) for e in found)
    assert all((e.device, e.structure, e.account) == (CAMERA, STRUCTURE, "a") for e in found)
    assert camera_events(first, first, "a", at=AT) == []
    louder = _with_last_event(
        base, has_motion=True, has_person=True, has_sound=True, start_time=start
    )
    assert [type(e) for e in camera_events(first, louder, "a", at=AT)] == [Sound]
    later = _with_last_event(base, has_motion=True, start_time="2017-11-22T06:00:00.000Z")
    assert [type(e) for e in camera_events(louder, later, "a", at=AT)] == [Motion]


def test_camera_events_baseline_is_not_reported() -> None:
    base = load("jtsiros-apiResponse.json")
    seen = _with_last_event(base, has_motion=True, start_time="2017-11-22T05:42:28.360Z")
    assert camera_events(None, seen, "a", at=AT) == []
    without_camera = apply_put(base, f"/devices/cameras/{CAMERA}", None)
    assert camera_events(without_camera, seen, "a", at=AT) == []


def test_previous_mode() -> None:
    document = load("jtsiros-apiResponse.json")
    assert previous_mode(document, FAMILY_ROOM) is None  # "" in the sample
    eco = load("jtsiros-device.json") | {"hvac_mode": "eco", "previous_hvac_mode": "heat-cool"}
    document = apply_put(document, f"/devices/thermostats/{FAMILY_ROOM}", eco)
    assert previous_mode(document, FAMILY_ROOM) is ThermostatMode.HEAT_COOL
    assert previous_mode(document, "nope") is None
    assert previous_mode(None, FAMILY_ROOM) is None


# --- encode --------------------------------------------------------------------------------

THERMOSTAT_PATH = f"/devices/thermostats/{FAMILY_ROOM}"


@pytest.mark.parametrize(
    ("mode", "action", "body"),
    [
        ("heat", SetMode(ThermostatMode.COOL), {"hvac_mode": "cool"}),
        ("heat", SetMode(ThermostatMode.HEAT_COOL), {"hvac_mode": "heat-cool"}),
        ("heat", SetEco(True), {"hvac_mode": "eco"}),
        ("heat", SetHeat(21.5), {"target_temperature_c": 21.5}),
        ("cool", SetCool(24.0), {"target_temperature_c": 24.0}),
        ("heat-cool", SetHeat(18.0), {"target_temperature_low_c": 18.0}),
        ("heat-cool", SetCool(25.0), {"target_temperature_high_c": 25.0}),
        (
            "heat-cool",
            SetRange(18.0, 25.0),
            {"target_temperature_low_c": 18.0, "target_temperature_high_c": 25.0},
        ),
        ("heat", SetFanTimer(30), {"fan_timer_duration": 30, "fan_timer_active": True}),
        ("heat", SetFanTimer(0), {"fan_timer_active": False}),
    ],
)
def test_encode_thermostat(mode: str, action: Action, body: dict[str, Any]) -> None:
    assert encode(action, thermostat(hvac_mode=mode)) == (THERMOSTAT_PATH, body)


def test_encode_eco_off_returns_to_the_previous_mode() -> None:
    in_eco = thermostat(hvac_mode="eco")
    off = SetEco(False)
    assert encode(off, in_eco, previous_mode=ThermostatMode.HEAT_COOL)[1] == {
        "hvac_mode": "heat-cool"
    }
    assert encode(off, in_eco, previous_mode=ThermostatMode.COOL)[1] == {"hvac_mode": "cool"}
    assert encode(off, in_eco)[1] == {"hvac_mode": "heat"}  # unknown: heat when it can heat
    cool_only = thermostat(hvac_mode="eco", can_heat=False)
    assert encode(off, cool_only)[1] == {"hvac_mode": "cool"}
    assert encode(off, thermostat(hvac_mode="cool"))[1] == {"hvac_mode": "cool"}  # not in eco


def test_encode_setpoint_in_eco_targets_the_mode_eco_returns_to() -> None:
    # WWN itself refuses this with a 400; the encoder lets the vendor answer.
    in_eco = thermostat(hvac_mode="eco")
    assert encode(SetHeat(21.0), in_eco)[1] == {"target_temperature_c": 21.0}
    heat_cool = encode(SetHeat(21.0), in_eco, previous_mode=ThermostatMode.HEAT_COOL)
    assert heat_cool[1] == {"target_temperature_low_c": 21.0}


def test_encode_presence() -> None:
    home = Structure(id=STRUCTURE, name="Home 1")
    assert encode(SetPresence(Presence.AWAY), home) == (
        f"/structures/{STRUCTURE}",
        {"away": "away"},
    )
    assert encode(SetPresence(Presence.HOME), home)[1] == {"away": "home"}


@pytest.mark.parametrize(
    ("action", "target"),
    [
        (SetPresence(Presence.AWAY), thermostat()),
        (SetHeat(20.0), Structure(id=STRUCTURE, name="Home 1")),
        (SetHeat(20.0), Camera(id=CAMERA, name="cam", structure_id=STRUCTURE)),
        (SetHeat(20.0), thermostat(hvac_mode="cool")),
        (SetHeat(20.0), thermostat(hvac_mode="off")),
        (SetCool(20.0), thermostat(hvac_mode="heat")),
        (SetRange(18.0, 25.0), thermostat(hvac_mode="heat")),
        (SetFanTimer(15), thermostat(has_fan=False)),
        (SetMode(ThermostatMode.COOL), thermostat(can_cool=False)),
        (SetMode(ThermostatMode.HEAT_COOL), thermostat(can_heat=False)),
        (Action(), thermostat()),
    ],
)
def test_encode_refuses_what_does_not_apply(action: Action, target: Any) -> None:
    with pytest.raises(EncodeError):
        encode(action, target)


# --- errors --------------------------------------------------------------------------------


def wwn_error(status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {
        "error": message,
        "type": "https://developers.nest.com/documentation/cloud/error-messages#x",
        "message": message,
        "instance": "31441a94-ed26-11e4-90ec-1681e6b88ec1",
    }
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "message", "reason"),
    [
        (400, "Cannot change target temperature while in eco mode", FailureReason.INVALID),
        (400, "Thermostat is not online", FailureReason.OFFLINE),
        (401, "unauthorized", FailureReason.UNAUTHORIZED),
        (403, "No write permission(s) for field(s): hvac_mode", FailureReason.UNAUTHORIZED),
        (404, "Not found", FailureReason.NOT_FOUND),
        (429, "Blocked", FailureReason.RATE_LIMITED),
        (500, "Internal error", FailureReason.SERVER_ERROR),
        (503, "Unavailable", FailureReason.SERVER_ERROR),
    ],
)
def test_error_mapping(status: int, message: str, reason: FailureReason) -> None:
    result = write_failure(wwn_error(status, message))
    assert (result.ok, result.reason) == (False, reason)
    assert message in result.detail
    assert str(status) in result.detail


def test_error_without_json_body() -> None:
    result = write_failure(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert (result.reason, result.detail) == (
        FailureReason.SERVER_ERROR,
        "HTTP 502: <html>Bad gateway</html>",
    )


def test_retry_after_as_seconds() -> None:
    result = write_failure(wwn_error(429, "Blocked", {"Retry-After": "120"}))
    assert (result.reason, result.retry_after_s) == (FailureReason.RATE_LIMITED, 120.0)


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    headers = {"Retry-After": "Sun, 01 Mar 2026 12:01:30 GMT"}
    result = write_failure(wwn_error(429, "Blocked", headers), now=now)
    assert result.retry_after_s == 90.0
    assert parse_retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "nan"])
def test_retry_after_unusable(value: str | None) -> None:
    assert parse_retry_after(value) is None


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectTimeout("connect timed out"), FailureReason.TIMEOUT),
        (httpx.ReadTimeout("read timed out"), FailureReason.TIMEOUT),
        (httpx.ConnectError("connection refused"), FailureReason.NETWORK),
        (httpx.RemoteProtocolError("peer closed"), FailureReason.NETWORK),
    ],
)
def test_transport_errors(exc: httpx.TransportError, reason: FailureReason) -> None:
    result = transport_failure(exc)
    assert (result.ok, result.reason) == (False, reason)
    assert reason.retryable
