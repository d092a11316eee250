"""The Netatmo simulator on its own, over HTTP: what a client sees on the wire."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest

from roost.core.clock import VirtualClock
from roost.simulator import http, netatmo
from roost.simulator.home import SimHome

pytestmark = pytest.mark.anyio

HOME_ID = "structure-home"
LIVING = "thermostat-living-room"


@asynccontextmanager
async def cloud(
    **options: Any,
) -> AsyncIterator[tuple[netatmo.NetatmoSimulator, httpx.AsyncClient]]:
    home = options.pop("home", None) or SimHome.demo()
    async with netatmo.serve(home, **options) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        yield sim, client


async def token(
    sim: netatmo.NetatmoSimulator, client: httpx.AsyncClient, refresh: str | None = None
) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh or sim.refresh_token,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
    }
    return await client.post("/oauth2/token", data=form)


async def bearer(sim: netatmo.NetatmoSimulator, client: httpx.AsyncClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {(await token(sim, client)).json()['access_token']}"}


async def test_refresh_tokens_rotate_and_a_spent_one_is_an_invalid_grant() -> None:
    async with cloud() as (sim, client):
        seed = sim.refresh_token
        first = await token(sim, client)
        assert first.status_code == 200
        body = first.json()
        assert body["expires_in"] == 10800
        assert "write_thermostat" in body["scope"]
        assert body["refresh_token"] != seed
        again = await token(sim, client, seed)
        assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})
        form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
        wrong_client = await client.post("/oauth2/token", data=form | {"client_id": "x"})
        assert wrong_client.json() == {"error": "invalid_client"}


async def test_tokens_are_checked_invalid_expired_and_scoped() -> None:
    async with cloud(scopes=("read_thermostat",)) as (sim, client):
        headers = await bearer(sim, client)
        ok = await client.get("/api/homesdata", headers=headers)
        assert ok.status_code == 200
        assert ok.json()["status"] == "ok"
        assert ok.json()["body"]["homes"][0]["id"] == HOME_ID
        bad = await client.get("/api/homesdata", headers={"Authorization": "Bearer nope"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (403, 2)
        scope = await client.get("/api/getevents", params={"home_id": HOME_ID}, headers=headers)
        assert scope.json() == {
            "error": {"code": 13, "message": "Application does not have the good scope rights"}
        }
        sim.expire_access_tokens()
        expired = await client.get("/api/homesdata", headers=headers)
        assert expired.json()["error"]["code"] == 3


async def test_the_per_user_limit_answers_user_usage_reached() -> None:
    clock = VirtualClock()
    async with cloud(home=SimHome.demo(clock=clock.now)) as (sim, client):
        headers = await bearer(sim, client)
        for _ in range(50):
            assert (await client.get("/api/homesdata", headers=headers)).status_code == 200
        refused = await client.get("/api/homesdata", headers=headers)
        assert refused.status_code == 403
        assert refused.json() == {"error": {"code": 26, "message": "User usage reached"}}
        await clock.advance(10.5)
        assert (await client.get("/api/homesdata", headers=headers)).status_code == 200
        assert sim.most_in_window(10.0) == 50
        assert len(sim.refused()) == 1


async def test_homestatus_and_errors_use_the_netatmo_envelope() -> None:
    async with cloud() as (sim, client):
        headers = await bearer(sim, client)
        missing = await client.get("/api/homestatus", headers=headers)
        assert (missing.status_code, missing.json()["error"]) == (
            400,
            {"code": 10, "message": "home_id is missing"},
        )
        unknown = await client.get("/api/homestatus", params={"home_id": "x"}, headers=headers)
        assert unknown.json()["error"] == {"code": 21, "message": "Invalid id"}
        sim.home.set_online("camera-front-door", False)
        status = await client.get("/api/homestatus", params={"home_id": HOME_ID}, headers=headers)
        body = status.json()["body"]
        room = next(r for r in body["home"]["rooms"] if r["id"] == LIVING)
        assert room["therm_setpoint_mode"] == "schedule"
        assert room["therm_measured_temperature"] == 19.5
        assert body["errors"] == [{"code": 6, "id": "camera-front-door"}]
        assert {m["type"] for m in body["home"]["modules"]} == {
            "NAPlug",
            "NATherm1",
            "NRV",
            "NSD",
            "NCO",
        }
        assert [p["out_of_sight"] for p in body["home"]["persons"]] == [False, False]


async def test_manual_setpoints_end_at_their_end_time() -> None:
    clock = VirtualClock()
    async with cloud(home=SimHome.demo(clock=clock.now)) as (sim, client):
        headers = await bearer(sim, client)
        end = int((clock.now() + timedelta(minutes=30)).timestamp())
        form = {
            "home_id": HOME_ID,
            "room_id": LIVING,
            "mode": "manual",
            "temp": "22",
            "endtime": str(end),
        }
        set_point = await client.post("/api/setroomthermpoint", data=form, headers=headers)
        assert set_point.json()["status"] == "ok"
        assert "body" not in set_point.json()
        assert sim.home.thermostat(LIVING).target_c == 22.0
        no_mode = await client.post(
            "/api/setroomthermpoint", data={**form, "mode": ""}, headers=headers
        )
        assert no_mode.json()["error"] == {"code": 10, "message": "mode is missing"}
        await clock.advance(31 * 60)
        status = await client.get("/api/homestatus", params={"home_id": HOME_ID}, headers=headers)
        room = next(r for r in status.json()["body"]["home"]["rooms"] if r["id"] == LIVING)
        assert (room["therm_setpoint_mode"], room["therm_setpoint_temperature"]) == (
            "schedule",
            20.0,
        )


async def test_home_modes_schedules_scenarios_and_module_state() -> None:
    async with cloud() as (sim, client):
        headers = await bearer(sim, client)
        away = {"home_id": HOME_ID, "mode": "away"}
        assert (
            await client.post("/api/setthermmode", data=away, headers=headers)
        ).status_code == 200
        assert all(t.mode == "eco" for t in sim.home.thermostats.values())
        back = {"home_id": HOME_ID, "mode": "schedule"}
        await client.post("/api/setthermmode", data=back, headers=headers)
        assert all(t.mode == "heat" for t in sim.home.thermostats.values())

        schedule = {
            "home_id": HOME_ID,
            "name": "Winter",
            "hg_temp": 7,
            "away_temp": 15,
            "zones": [],
            "timetable": [],
        }
        created = await client.post("/api/createnewhomeschedule", json=schedule, headers=headers)
        schedule_id = created.json()["body"]["schedule_id"]
        switch = {"home_id": HOME_ID, "schedule_id": schedule_id}
        assert (
            await client.post("/api/switchhomeschedule", data=switch, headers=headers)
        ).status_code == 200
        wrong = await client.post(
            "/api/switchhomeschedule", data={**switch, "schedule_id": "blah"}, headers=headers
        )
        assert wrong.json()["error"] == {
            "code": 21,
            "message": "schedule blah is not therm schedule",
        }

        scenarios = await client.get(
            "/api/getscenarios", params={"home_id": HOME_ID}, headers=headers
        )
        assert {s["type"] for s in scenarios.json()["body"]["home"]["scenarios"]} >= {
            "home",
            "away",
        }

        sim.home.add(netatmo.SimCamera(id="cam", name="Hall", structure_id=HOME_ID, room="Hall"))
        state = {"home": {"id": HOME_ID, "modules": [{"id": "cam", "monitoring": "on"}]}}
        already = await client.post("/api/setstate", json=state, headers=headers)
        assert already.json()["body"]["errors"] == [
            {"code": 23, "message": "Already on", "id": "cam", "command": "command/changestatus"}
        ]
        state["home"]["modules"][0]["monitoring"] = "off"
        await client.post("/api/setstate", json=state, headers=headers)
        assert sim.home.camera("cam").streaming is False


async def test_alarm_events_are_in_getevents_and_pushed_signed_to_the_webhook() -> None:
    received: list[tuple[bytes, str]] = []
    arrived = anyio.Event()

    async def receiver(request: http.Request) -> http.Response:
        received.append((request.body, request.headers.get("x-netatmo-secret", "")))
        arrived.set()
        return http.Response(200, {"status": "ok"})

    async with cloud() as (sim, client), http.serve(receiver) as hook:
        headers = await bearer(sim, client)
        await client.post("/api/addwebhook", data={"url": hook.url + "/hook"}, headers=headers)
        sim.home.set_co("alarm-hallway", "emergency")
        with anyio.fail_after(5):
            while len(received) < 2:
                await arrived.wait()
                arrived = anyio.Event()
        events = await client.get("/api/getevents", params={"home_id": HOME_ID}, headers=headers)
        latest = events.json()["body"]["home"]["events"][0]
        assert (latest["type"], latest["sub_type"], latest["module_id"]) == (
            "co_detected",
            2,
            "alarm-hallway-co",
        )
        for body, signature in received:
            expected = hmac.new(sim.client_secret.encode(), body, hashlib.sha256).hexdigest()
            assert signature == expected
        pushed = [json.loads(body) for body, _ in received]
        assert pushed[0]["push_type"] == "webhook_activation"
        assert (pushed[1]["push_type"], pushed[1]["sub_type"], pushed[1]["event_id"]) == (
            "NCO-co_detected",
            2,
            latest["id"],
        )
