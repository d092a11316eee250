"""Real Netatmo payloads (tests/fixtures/netatmo, see SOURCES.txt) through roost's parsers.

Every file in the folder is used by at least one test here: the topology and status of
pyatmo's test home normalize to the devices a person would expect, its event history to
the events roost reports, the error bodies to typed failures, the webhook samples verify
and parse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost.core.commands import FailureReason
from roost.core.events import Motion, Person
from roost.core.model import (
    AlarmState,
    Camera,
    Doorbell,
    HvacActivity,
    Presence,
    SmokeCoAlarm,
    Thermostat,
    ThermostatMode,
)
from roost.providers.base import MemoryProviderMemory
from roost.providers.netatmo import errors
from roost.providers.netatmo.normalize import AlarmStates, HomeReading, normalize, person_ids
from roost.providers.netatmo.timeline import AlarmChange, Timeline, events_of, interpret
from roost.providers.netatmo.webhook import sign, verify
from roost.providers.oauth import parse_token_response

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "netatmo"
HOME_B = "91763b24c43d3e344f424e8b"
HOME_C = "91763b24c43d3e344f424e8c"
USED: set[str] = set()


def load(name: str) -> Any:
    USED.add(name)
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def raw(name: str) -> bytes:
    USED.add(name)
    return (FIXTURES / name).read_bytes()


def homes(name: str = "pyatmo-homesdata.json") -> dict[str, Any]:
    return {h["id"]: h for h in load(name)["body"]["homes"]}


def reading(home_id: str, status_file: str) -> HomeReading:
    body = load(status_file)["body"]
    return HomeReading(homes()[home_id], body["home"], errors.module_errors(body))


# --- topology and status -------------------------------------------------------------------


def test_pyatmo_home_normalizes_rooms_alarms_and_cameras() -> None:
    home = normalize(
        [reading(HOME_B, "pyatmo-homestatus_91763b24c43d3e344f424e8b.json")], "acct", {}
    )
    structure = home.structures[HOME_B]
    assert structure.name == "MYHOME"
    assert structure.time_zone == "Europe/Berlin"
    assert structure.presence is Presence.HOME  # one of three persons is in sight

    living = home.devices["2746182631"]
    assert isinstance(living, Thermostat)
    assert (living.name, living.room, living.online) == ("Livingroom", "Livingroom", True)
    assert living.mode is ThermostatMode.ECO  # therm_setpoint_mode "away"
    assert living.heat_setpoint_c == 12.0
    assert living.ambient_c == 19.8
    assert living.can_cool is False

    kitchen = home.devices["2940411577"]  # NRV valve in frost guard
    assert isinstance(kitchen, Thermostat)
    assert (kitchen.mode, kitchen.heat_setpoint_c, kitchen.ambient_c) == (
        ThermostatMode.ECO,
        7.0,
        27.0,
    )
    assert kitchen.hvac is HvacActivity.IDLE

    corridor = home.devices["1002003001"]  # a Smarther (BNS) room following its schedule
    assert isinstance(corridor, Thermostat)
    assert (corridor.mode, corridor.heat_setpoint_c, corridor.humidity) == (
        ThermostatMode.HEAT,
        22.0,
        67.0,
    )
    assert corridor.hvac is HvacActivity.HEATING  # its module's boiler_status is true

    bureau = home.devices["222452125"]  # homesdata knows it, homestatus says nothing
    assert isinstance(bureau, Thermostat)
    assert bureau.online is False

    hall = home.devices["12:34:56:00:f1:62"]
    assert type(hall) is Camera
    assert hall.streaming
    assert hall.room == "Hall"
    assert type(home.devices["12:34:56:10:b9:0e"]) is Camera  # NOC, outdoors
    assert isinstance(home.devices["12:34:56:10:f1:66"], Doorbell)
    # weather stations, lights, shutters, energy meters: not modelled
    assert "12:34:56:80:bb:26" not in home.devices
    assert "12:34:56:80:00:12:ac:f2" not in home.devices
    assert {type(d).__name__ for d in home.devices.values()} == {
        "Thermostat",
        "Camera",
        "Doorbell",
    }


def test_a_home_with_only_persons_is_away_when_all_are_out_of_sight() -> None:
    status = load("pyatmo-homestatus_91763b24c43d3e344f424e8c.json")["body"]["home"]
    home = normalize([HomeReading(homes()[HOME_C], status)], "acct", {})
    structure = home.structures[HOME_C]
    assert structure.name == HOME_C  # that home has no name
    assert structure.presence is Presence.AWAY
    assert person_ids(status) == [
        "abcdef12-1111-0000-0000-000111222333",
        "abcdef12-2222-0000-0000-000111222333",
    ]


def test_without_persons_presence_follows_the_heating_away_mode() -> None:
    status = json.loads(json.dumps(load("pyatmo-homestatus_91763b24c43d3e344f424e8b.json")))
    home = status["body"]["home"]
    del home["persons"]
    assert (
        normalize([HomeReading(homes()[HOME_B], home)], "a", {}).structures[HOME_B].presence
        is Presence.HOME
    )  # frost guard and schedule rooms: not away
    for room in home["rooms"]:
        room["therm_setpoint_mode"] = "away"
    assert (
        normalize([HomeReading(homes()[HOME_B], home)], "a", {}).structures[HOME_B].presence
        is Presence.AWAY
    )


def test_a_disconnected_relay_takes_its_rooms_offline() -> None:
    body = load("pyatmo-home_status_error_disconnected.json")["body"]
    assert errors.module_errors(body) == {"12:34:56:00:fa:d0": 6}
    status = load("pyatmo-homestatus_91763b24c43d3e344f424e8b.json")["body"]["home"]
    broken = HomeReading(homes()[HOME_B], status, {"12:34:56:00:01:ae": 6})
    home = normalize([broken], "acct", {})
    assert home.devices["2746182631"].online is False
    assert home.devices["2940411577"].online is True


def test_the_legacy_homesdata_shape_normalizes_too() -> None:
    data = homes("pyatmo-archive-home_data_simple.json")
    home = normalize([HomeReading(h, {"id": i}) for i, h in data.items()], "acct", {})
    assert home.devices["2746182631"].name == "Livingroom"
    assert home.devices["2746182631"].online is False  # no status for it
    assert isinstance(home.devices["12:34:56:00:f1:62"], Camera)


def test_alarm_states_from_events_reach_the_smoke_and_co_alarms() -> None:
    data = json.loads(json.dumps(homes()[HOME_B]))
    data["modules"] += [
        {"id": "70:ee:50:00:00:01", "type": "NSD", "name": "Hall smoke", "room_id": "3688132631"},
        {"id": "70:ee:50:00:00:02", "type": "NCO", "name": "Hall CO", "room_id": "3688132631"},
    ]
    status = {"id": HOME_B, "modules": [{"id": "70:ee:50:00:00:02", "battery_state": "low"}]}
    alarms = {"70:ee:50:00:00:02": AlarmStates(co=AlarmState.WARNING)}
    home = normalize([HomeReading(data, status)], "acct", alarms)
    smoke, co = home.devices["70:ee:50:00:00:01"], home.devices["70:ee:50:00:00:02"]
    assert isinstance(smoke, SmokeCoAlarm)
    assert isinstance(co, SmokeCoAlarm)
    assert (smoke.smoke, smoke.co, smoke.room) == (AlarmState.OK, AlarmState.OK, "Hall")
    assert (co.co, co.battery) == (AlarmState.WARNING, "replace")


# --- events ----------------------------------------------------------------------------------


def test_getevents_history_means_three_person_events_and_nothing_else() -> None:
    entries = events_of(load("pyatmo-getevents.json")["body"])
    assert len(entries) == 8
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
    meanings = {e["id"]: interpret(e) for e in entries}
    assert meanings["11111111111111111f7763a6d"] is Person  # outdoor: human and vehicle
    assert meanings["1111111111111117cb8147ffd"] is Person
    assert meanings["1111111111111112c91b3628"] is Person  # indoor camera saw John
    ignored = ("connection", "boot", "disconnection", "person_home", "tag_open")
    assert all(meanings[e["id"]] is None for e in entries if e["type"] in ignored)


def test_alarm_event_types_set_alarm_states() -> None:
    co = interpret({"id": "a", "type": "co_detected", "time": 1, "module_id": "m", "sub_type": 2})
    assert co == AlarmChange("m", "co", AlarmState.EMERGENCY)
    pre = interpret({"id": "b", "type": "co_detected", "time": 1, "module_id": "m", "sub_type": 1})
    assert pre == AlarmChange("m", "co", AlarmState.WARNING)
    smoke = interpret({"id": "c", "type": "smoke", "time": 1, "module_id": "s", "sub_type": 1})
    assert smoke == AlarmChange("s", "smoke", AlarmState.EMERGENCY)
    assert interpret({"id": "d", "type": "movement", "time": 1, "module_id": "c"}) is Motion
    assert (
        interpret({"id": "e", "type": "hush", "time": 1, "module_id": "s", "sub_type": 0}) is None
    )


async def test_a_first_read_is_a_baseline_and_a_restart_reports_nothing_twice() -> None:
    memory = MemoryProviderMemory()
    entries = events_of(load("pyatmo-getevents.json")["body"])
    first = Timeline(memory, "acct", HOME_B)
    await first.load()
    assert await first.news(entries) == []  # history from before roost was watching
    new = {"id": "new-1", "type": "person", "time": 1645999999, "module_id": "12:34:56:00:f1:62"}
    news = await first.news([*entries, new])
    assert [e["id"] for e in news] == ["new-1"]
    await first.reported(news[0])

    again = Timeline(memory, "acct", HOME_B)  # a restart, same memory
    await again.load()
    assert await again.news([*entries, new]) == []


# --- tokens, envelopes and errors ------------------------------------------------------------


def test_the_token_response_parses() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    tokens = parse_token_response(load("pyatmo-archive-oauth2_token.json"), now)
    assert tokens.access_token.startswith("91763b24c43d3e344f424e8b|")
    assert tokens.refresh_token
    assert tokens.refresh_token != tokens.access_token
    assert (tokens.expires_at - now).total_seconds() == 10800  # type: ignore[operator]
    assert "read_thermostat" in tokens.scope.split()
    assert "access_token" not in repr(tokens)
    assert tokens.access_token not in repr(tokens)


@pytest.mark.parametrize(
    ("name", "status", "reason", "code"),
    [
        ("pyatmo-archive-error_scope.json", 403, FailureReason.UNAUTHORIZED, 13),
        ("pyatmo-archive-home_status_error_invalid_id.json", 400, FailureReason.INVALID, 21),
        ("pyatmo-home_status_error_invalid_schedule_id.json", 400, FailureReason.INVALID, 21),
        ("pyatmo-home_status_error_mode_is_missing.json", 400, FailureReason.INVALID, 10),
        ("pyatmo-archive-invalid_grant.json", 400, FailureReason.INVALID, None),
        ("pyatmo-archive-too_many_connections.json", 429, FailureReason.RATE_LIMITED, None),
    ],
)
def test_error_bodies_become_typed_failures(
    name: str, status: int, reason: FailureReason, code: int | None
) -> None:
    error = errors.from_response(httpx.Response(status, content=raw(name)))
    assert error.code == code
    assert error.message
    assert error.message in str(error)
    assert errors.failure(error).reason is reason


def test_user_usage_reached_is_rate_limited_and_ok_bodies_are_ok() -> None:
    body = b'{"error":{"code":26,"message":"User usage reached"}}'
    error = errors.from_response(httpx.Response(403, content=body))
    assert error.rate_limited
    assert errors.failure(error).reason is FailureReason.RATE_LIMITED
    assert load("pyatmo-status_ok.json")["status"] == "ok"
    assert load("pyatmo-archive-camera_set_state_ok.json")["status"] == "ok"
    already = load("pyatmo-archive-camera_set_state_error_already_on.json")["body"]
    assert errors.module_errors(already) == {"12:34:56:00:f1:62": 23}
    assert errors.partial_failure(already) is None  # "Already on": the state is as asked
    offline = {"errors": [{"code": 6, "id": "12:34:56:00:f1:62"}]}
    failed = errors.partial_failure(offline)
    assert failed is not None
    assert failed.reason is FailureReason.OFFLINE


# --- webhooks --------------------------------------------------------------------------------


def test_every_webhook_sample_verifies_when_signed_and_fails_when_forged() -> None:
    samples = load("webhook-samples.json")["samples"]
    assert len(samples) == 7
    for sample in samples:
        body = json.dumps(sample["body"]).encode()
        signature = sign("app-secret", body)
        assert len(signature) == 64
        assert signature == signature.lower()
        assert verify("app-secret", body, signature)
        assert verify("app-secret", body, signature.upper())
        assert not verify("other-secret", body, signature)
        assert not verify("app-secret", body + b" ", signature)
        assert not verify("app-secret", body, None)
        assert isinstance(json.loads(body)["push_type"], str)


def test_every_fixture_is_used() -> None:
    # runs last in this module (pytest keeps file order): each file has a test above
    expected = {p.name for p in FIXTURES.glob("*.json")}
    assert expected - USED == set()
