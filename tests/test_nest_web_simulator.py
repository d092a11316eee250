"""The Nest web simulator over real HTTP on 127.0.0.1: session, app_launch, both subscribe
forms, puts, and its errors. The requests are shaped like the captured ones."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from roost.simulator import nest_web
from roost.simulator.home import SimHome

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "nest_web"
EMAIL, PASSWORD = "owner@example.com", "secret"
LIVING, BEDROOM, ALARM, HOME = (
    "thermostat-living-room",
    "thermostat-bedroom",
    "alarm-hallway",
    "structure-home",
)
HOLD_S = 0.3


@dataclass
class Session:
    sim: nest_web.NestWebSimulator
    http: httpx.AsyncClient
    token: str
    user_id: str
    transport: str

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Basic {self.token}",
            "X-nl-user-id": self.user_id,
            "X-nl-protocol-version": "1",
        }

    async def post(self, path: str, body: Any, **kwargs: Any) -> httpx.Response:
        url = path if path.startswith("http") else self.transport + path
        return await self.http.post(url, json=body, headers=self.headers, **kwargs)

    async def app_launch(self, types: list[str] | None = None) -> dict[str, Any]:
        url = f"{self.sim.url}/api/0.1/user/{self.user_id}/app_launch"
        body = {"known_bucket_types": types or list(nest_web.APP_LAUNCH_TYPES)}
        response = await self.post(url, body | {"known_bucket_versions": []})
        assert response.status_code == 200
        reply: dict[str, Any] = response.json()
        return reply

    async def held(self) -> list[dict[str, Any]]:
        """Every bucket's key, revision and timestamp, as a client would subscribe."""
        buckets = (await self.app_launch())["updated_buckets"]
        return [
            {k: b[k] for k in ("object_key", "object_revision", "object_timestamp")}
            for b in buckets
        ]


@asynccontextmanager
async def session(home: SimHome | None = None) -> AsyncIterator[Session]:
    async with (
        nest_web.serve(
            home or SimHome.demo(), email=EMAIL, password=PASSWORD, hold_s=HOLD_S
        ) as sim,
        httpx.AsyncClient(timeout=5) as client,
    ):
        response = await client.post(
            f"{sim.url}/session", json={"email": EMAIL, "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        yield Session(
            sim, client, body["access_token"], body["userid"], body["urls"]["transport_url"]
        )


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- session and app_launch --------------------------------------------------------------------


async def test_login_answers_the_token_user_and_transport_and_refuses_a_bad_password() -> None:
    async with session() as s:
        assert s.transport == s.sim.transport_url
        assert s.transport != s.sim.url  # the transport is elsewhere: clients must use the URL
        token = s.headers["Authorization"].removeprefix("Basic ")
        again = await s.http.get(
            f"{s.sim.url}/session", headers={**s.headers, "Cookie": f"cztoken={token}"}
        )
        assert again.json()["userid"] == s.user_id
        no_cookie = await s.http.get(f"{s.sim.url}/session", headers=s.headers)
        assert no_cookie.status_code == 401  # the web app always sends the cztoken cookie
        assert "GMT" in again.json()["expires_in"]
        bad = await s.http.post(f"{s.sim.url}/session", json={"email": EMAIL, "password": "no"})
        assert bad.status_code == 400
        unknown = await s.http.get(f"{s.sim.url}/session", headers={"Authorization": "Basic x"})
        assert unknown.status_code == 401


async def test_app_launch_answers_every_bucket_of_the_asked_types() -> None:
    async with session() as s:
        reply = await s.app_launch()
        keys = {b["object_key"] for b in reply["updated_buckets"]}
        for serial in (LIVING, BEDROOM):
            assert {f"device.{serial}", f"shared.{serial}", f"track.{serial}"} <= keys
        assert {f"topaz.{ALARM}", f"structure.{HOME}", f"where.{HOME}", f"user.{s.user_id}"} <= keys
        assert reply["service_urls"]["urls"]["transport_url"] == s.transport
        structure = next(
            b for b in reply["updated_buckets"] if b["object_key"] == f"structure.{HOME}"
        )
        assert set(structure["value"]["swarm"]) == {
            f"device.{LIVING}",
            f"device.{BEDROOM}",
            f"topaz.{ALARM}",
        }
        listing = await s.app_launch(["buckets"])
        [buckets] = listing["updated_buckets"]
        assert f"schedule.{LIVING}" in buckets["value"]["buckets"]


# --- subscribe ------------------------------------------------------------------------------


async def test_v5_subscribe_returns_the_changed_bucket_with_its_new_revision() -> None:
    async with session() as s:
        held = await s.held()
        topaz = next(o for o in held if o["object_key"] == f"topaz.{ALARM}")

        async def change_soon() -> None:
            await anyio.sleep(0.05)
            s.sim.home.set_co(ALARM, "emergency")

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(change_soon)
            with anyio.fail_after(5):
                response = await s.post("/v5/subscribe", {"objects": held})
        [obj] = response.json()["objects"]
        assert obj["object_key"] == f"topaz.{ALARM}"
        assert obj["object_revision"] != topaz["object_revision"]
        assert obj["value"]["co_status"] == 3


async def test_v5_subscribe_answers_at_once_for_a_stale_revision_and_empty_after_the_hold() -> None:
    async with session() as s:
        held = await s.held()
        stale = [
            dict(o, object_revision=o["object_revision"] + 1)
            if o["object_key"].startswith("shared.")
            else o
            for o in held
        ]
        with anyio.fail_after(HOLD_S / 2):
            response = await s.post("/v5/subscribe", {"objects": stale})
        assert {o["object_key"] for o in response.json()["objects"]} == {
            f"shared.{LIVING}",
            f"shared.{BEDROOM}",
        }
        with anyio.fail_after(5):
            quiet = await s.post("/v5/subscribe", {"objects": held})
        assert quiet.json() == {"objects": []}


async def test_v1_subscribe_with_the_captured_request_shape_answers_skv_headers() -> None:
    async with session() as s:
        captured = fixture("seed-v1-subscribe-request.json")
        versions = {o["object_key"]: o for o in await s.held()}
        keys = []
        for entry in captured["keys"]:
            kind = entry["key"].partition(".")[0]
            key = f"{kind}.{s.user_id}" if kind in ("user", "user_alert_dialog") else None
            key = key or {"structure": f"structure.{HOME}"}.get(kind) or f"{kind}.{BEDROOM}"
            held = versions.get(key)
            version = held["object_revision"] if held else entry["version"]
            keys.append({"key": key, "version": version, "timestamp": entry["timestamp"]})
        s.sim.home.set_target(BEDROOM, 17.5)
        response = await s.post("/v1/subscribe", {"keys": keys})
        assert response.status_code == 200
        captured_reply = fixture("seed-v1-subscribe-response-shared.json")
        assert set(captured_reply["headers"]) <= {h.lower() for h in response.headers} | set(
            captured_reply["headers"]
        )
        for name in captured_reply["headers"]:
            assert name.lower() in response.headers
        assert response.headers["x-nl-skv-key"] == f"shared.{BEDROOM}"
        assert (
            int(response.headers["x-nl-skv-version"])
            != versions[f"shared.{BEDROOM}"]["object_revision"]
        )
        assert set(response.json()) == set(captured_reply["payload"])
        assert response.json()["target_temperature"] == 17.5
        current = [
            dict(k, version=int(response.headers["x-nl-skv-version"]))
            if k["key"] == f"shared.{BEDROOM}"
            else k
            for k in keys
        ]
        quiet = await s.post("/v1/subscribe", {"keys": current})
        assert quiet.status_code == 204, quiet.headers


async def test_a_dropped_long_poll_breaks_the_response() -> None:
    async with session() as s:
        held = await s.held()

        async def drop_soon() -> None:
            await anyio.sleep(0.05)
            s.sim.drop_subscriptions()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(drop_soon)
            with pytest.raises(httpx.RemoteProtocolError):
                await s.post("/v5/subscribe", {"objects": held})


# --- puts -----------------------------------------------------------------------------------


async def test_the_captured_v1_puts_land_on_the_home() -> None:
    async with session() as s:
        before = {o["object_key"]: o["object_revision"] for o in await s.held()}
        put = fixture("seed-v1-put-target-temperature.json")
        payload = {"shared": {BEDROOM: put["payload"]["shared"]["#DEVICE 2 SERIAL NUMBER#"]}}
        response = await s.post("/v1/put", payload)
        assert response.status_code == 200
        assert s.sim.home.thermostat(BEDROOM).target_c == pytest.approx(18.333333333333336)
        bucket = s.sim.store.get(f"shared.{BEDROOM}")
        assert bucket is not None
        assert bucket.version != before[f"shared.{BEDROOM}"]
        schedule = fixture("seed-v1-put-schedule-snippet.json")
        response = await s.post(f"/v1/put/schedule.{BEDROOM}", schedule["payload"])
        assert response.status_code == 200
        stored = s.sim.store.get(f"schedule.{BEDROOM}")
        assert stored is not None
        assert stored.value["days"] == schedule["payload"]["days"]
        assert stored.version != before[f"schedule.{BEDROOM}"]


async def test_v5_merges_set_eco_the_fan_and_presence() -> None:
    async with session() as s:
        now = int(s.sim.home.clock().timestamp())
        objects = [
            {
                "object_key": f"device.{LIVING}",
                "op": "MERGE",
                "value": {"eco": {"mode": "manual-eco"}},
            },
            {
                "object_key": f"device.{LIVING}",
                "op": "MERGE",
                "value": {"fan_timer_timeout": now + 900},
            },
            {
                "object_key": f"structure.{HOME}",
                "op": "MERGE",
                "value": {"away": True, "away_timestamp": now, "away_setter": 0},
            },
        ]
        response = await s.post("/v5/put", {"objects": objects})
        assert response.status_code == 200
        assert [o["object_key"] for o in response.json()["objects"]] == [
            o["object_key"] for o in objects
        ]
        living = s.sim.home.thermostat(LIVING)
        assert (living.mode, living.previous_mode, living.fan_timer_active) == ("eco", "heat", True)
        assert s.sim.home.structure(HOME).away is True
        shared = s.sim.store.get(f"shared.{LIVING}")
        assert shared is not None
        assert shared.value["target_temperature_type"] == "heat"  # eco is in device.
        structure = s.sim.store.get(f"structure.{HOME}")
        assert structure is not None
        assert structure.value["away_timestamp"] == now  # kept as written
        off = {"object_key": f"device.{LIVING}", "value": {"eco": {"mode": "schedule"}}}
        assert (await s.post("/v5/put", {"objects": [off]})).status_code == 200
        assert s.sim.home.thermostat(LIVING).mode == "heat"
        assert [key for key, _ in s.sim.writes] == [
            f"device.{LIVING}",
            f"device.{LIVING}",
            f"structure.{HOME}",
            f"device.{LIVING}",
        ]


@pytest.mark.parametrize(
    ("obj", "status"),
    [
        ({"object_key": f"shared.{LIVING}", "value": {"target_temperature": 40}}, 400),
        ({"object_key": f"shared.{LIVING}", "value": {"name": "x"}}, 400),
        ({"object_key": f"shared.{BEDROOM}", "value": {"target_temperature_type": "cool"}}, 400),
        (
            {
                "object_key": f"shared.{LIVING}",
                "value": {"target_temperature_low": 20, "target_temperature_high": 21},
            },
            400,
        ),
        ({"object_key": f"device.{BEDROOM}", "value": {"fan_timer_timeout": 2_000_000_000}}, 400),
        ({"object_key": f"topaz.{ALARM}", "value": {"co_status": 0}}, 403),
        ({"object_key": "shared.nope", "value": {"target_temperature": 20}}, 404),
        (
            {
                "object_key": f"shared.{LIVING}",
                "value": {"target_temperature": 20},
                "if_object_revision": 1,
            },
            409,
        ),
    ],
)
async def test_bad_puts_are_refused_and_change_nothing(obj: dict[str, Any], status: int) -> None:
    async with session() as s:
        before = s.sim.home.to_dict()
        fine = {"object_key": f"shared.{LIVING}", "value": {"target_temperature": 21}}
        response = await s.post("/v5/put", {"objects": [fine, obj]})
        assert response.status_code == status
        assert s.sim.home.to_dict() == before  # all or nothing
        assert s.sim.writes == []


async def test_a_put_to_an_offline_thermostat_is_refused() -> None:
    async with session() as s:
        s.sim.home.set_online(LIVING, False)
        obj = {"object_key": f"shared.{LIVING}", "value": {"target_temperature": 21}}
        assert (await s.post("/v5/put", {"objects": [obj]})).status_code == 400


# --- errors ---------------------------------------------------------------------------------


async def test_expired_sessions_get_401_until_a_new_login() -> None:
    async with session() as s:
        held = await s.held()
        s.sim.expire_sessions()
        assert (await s.post("/v5/subscribe", {"objects": held})).status_code == 401
        obj = {"object_key": f"shared.{LIVING}", "value": {"target_temperature": 21}}
        assert (await s.post("/v5/put", {"objects": [obj]})).status_code == 401
        s.token = s.sim.login()
        assert (await s.post("/v5/put", {"objects": [obj]})).status_code == 200


async def test_injected_failures_come_first() -> None:
    async with session() as s:
        s.sim.fail_next("read", 1, 503)
        s.sim.fail_next("login", 1, 429)
        assert (await s.post("/v5/subscribe", {"objects": []})).status_code == 503
        login = await s.http.post(
            f"{s.sim.url}/session", json={"email": EMAIL, "password": PASSWORD}
        )
        assert login.status_code == 429
        controls = await s.http.post(
            f"{s.sim.url}/_sim/co", json={"device": ALARM, "state": "warning"}
        )
        assert controls.status_code == 200
        assert s.sim.home.alarm(ALARM).co == "warning"
        assert s.sim.count("/v5/subscribe") == 1
