"""The SDM simulator speaks Google's wire protocol: OAuth, SDM REST and Pub/Sub pull, as a
plain HTTP client (httpx) sees them on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from roost.simulator import sdm
from roost.simulator.home import SimHome

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "sdm"
LOUNGE = "thermostat-lounge"
STUDY = "thermostat-study"
COMMAND = "sdm.devices.commands."


class Client:
    def __init__(self, sim: sdm.SdmSimulator, http: httpx.AsyncClient) -> None:
        self.sim, self.http = sim, http
        self.token = ""

    async def login(self) -> dict[str, Any]:
        response = await self.http.post(
            self.sim.token_url,
            data={
                "grant_type": "refresh_token",
                "client_id": self.sim.client_id,
                "client_secret": self.sim.client_secret,
                "refresh_token": self.sim.refresh_token,
            },
        )
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        self.token = body["access_token"]
        return body

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(f"{self.sim.api_url}/{path}", headers=self._auth())

    async def command(self, device: str, command: str, **params: Any) -> httpx.Response:
        return await self.http.post(
            f"{self.sim.api_url}/enterprises/sim-project/devices/{device}:executeCommand",
            json={"command": COMMAND + command, "params": params},
            headers=self._auth(),
        )

    async def pubsub(self, verb: str, body: Any) -> httpx.Response:
        url = f"{self.sim.pubsub_url}/{self.sim.subscription.name}:{verb}"
        return await self.http.post(url, json=body, headers=self._auth())

    async def pull(self, max_messages: int = 10) -> list[dict[str, Any]]:
        response = await self.pubsub("pull", {"maxMessages": max_messages})
        assert response.status_code == 200
        received: list[dict[str, Any]] = response.json().get("receivedMessages", [])
        return received

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@asynccontextmanager
async def client(home: SimHome | None = None, **options: Any) -> AsyncIterator[Client]:
    settings: dict[str, Any] = {"ack_deadline_s": 0.3, "pull_wait_s": 0.2, "thread_end_s": 0.1}
    settings.update(options)
    async with sdm.serve(home or sdm.demo_home(), **settings) as sim, httpx.AsyncClient() as http:
        c = Client(sim, http)
        await c.login()
        yield c


def data(received: dict[str, Any]) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.b64decode(received["message"]["data"]))
    return decoded


def error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    assert body["code"] == response.status_code
    return response.status_code, body["status"], body["message"]


# -- OAuth -------------------------------------------------------------------------------------


async def test_the_refresh_grant_answers_an_expiring_bearer_token() -> None:
    async with client(token_lifetime_s=0.3) as c:
        body = await c.login()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 0
        assert "sdm.service" in body["scope"]
        assert "pubsub" in body["scope"]
        assert (await c.get("enterprises/sim-project/devices")).status_code == 200
        await anyio.sleep(0.4)
        code, status, _ = error(await c.get("enterprises/sim-project/devices"))
        assert (code, status) == (401, "UNAUTHENTICATED")


async def test_the_token_endpoint_refuses_a_bad_grant_or_client() -> None:
    async with client() as c:
        form = {
            "grant_type": "refresh_token",
            "client_id": c.sim.client_id,
            "client_secret": c.sim.client_secret,
            "refresh_token": "1//wrong",
        }
        response = await c.http.post(c.sim.token_url, data=form)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_grant"
        response = await c.http.post(c.sim.token_url, data={**form, "client_secret": "x"})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


# -- SDM REST ----------------------------------------------------------------------------------


async def test_structures_rooms_and_devices_are_listed_with_the_real_shapes() -> None:
    async with client() as c:
        structures = (await c.get("enterprises/sim-project/structures")).json()["structures"]
        assert structures == [
            {
                "name": "enterprises/sim-project/structures/structure-villa",
                "traits": {"sdm.structures.traits.Info": {"customName": "Villa"}},
            }
        ]
        rooms = (await c.get(f"{structures[0]['name']}/rooms")).json()["rooms"]
        assert {r["traits"]["sdm.structures.traits.RoomInfo"]["customName"] for r in rooms} == {
            "Entrance",
            "Garden",
            "Lounge",
            "Study",
        }
        devices = (await c.get("enterprises/sim-project/devices")).json()["devices"]
        assert [d["type"] for d in devices] == [
            "sdm.devices.types.THERMOSTAT",
            "sdm.devices.types.THERMOSTAT",
            "sdm.devices.types.DOORBELL",
            "sdm.devices.types.CAMERA",
        ]
        reference = json.loads((FIXTURES / "openhab-thermostat-device-response.json").read_text())
        lounge = devices[0]
        assert set(lounge) == set(reference)
        assert set(lounge["traits"]) == set(reference["traits"])
        assert lounge["parentRelations"][0]["displayName"] == "Lounge"
        one = await c.get(lounge["name"])
        assert one.json() == lounge
        assert one.headers["date"].endswith("GMT")


async def test_an_unknown_device_is_not_found_like_google_says_it() -> None:
    async with client() as c:
        reference = json.loads((FIXTURES / "openhab-not-found-error.json").read_text())
        response = await c.get("enterprises/sim-project/devices/device-id")
        expected = reference["error"]["message"].replace("project-id", "sim-project")
        assert error(response) == (404, "NOT_FOUND", expected)


async def test_setpoint_commands_need_their_mode_and_no_eco() -> None:
    async with client() as c:
        ok = await c.command(LOUNGE, "ThermostatTemperatureSetpoint.SetCool", coolCelsius=24.0)
        assert (ok.status_code, ok.json()) == (200, {})
        code, status, message = error(
            await c.command(LOUNGE, "ThermostatTemperatureSetpoint.SetHeat", heatCelsius=20.0)
        )
        assert (code, status) == (400, "FAILED_PRECONDITION")
        assert "not allowed in current thermostat mode" in message
        await c.command(LOUNGE, "ThermostatEco.SetMode", mode="MANUAL_ECO")
        code, status, message = error(
            await c.command(LOUNGE, "ThermostatTemperatureSetpoint.SetCool", coolCelsius=23.0)
        )
        assert (status, "MANUAL_ECO" in message) == ("FAILED_PRECONDITION", True)
        assert c.sim.home.thermostat(LOUNGE).mode == "eco"


async def test_bad_arguments_are_invalid_argument() -> None:
    async with client() as c:
        bad = [
            await c.command(LOUNGE, "ThermostatTemperatureSetpoint.SetCool", coolCelsius="x"),
            await c.command(LOUNGE, "ThermostatTemperatureSetpoint.SetCool", coolCelsius=45),
            await c.command(LOUNGE, "ThermostatMode.SetMode", mode="TURBO"),
            await c.command(STUDY, "Fan.SetTimer", timerMode="ON"),  # no fan trait
            await c.command(LOUNGE, "Fan.SetTimer", timerMode="ON", duration="soon"),
            await c.command("doorbell-front", "ThermostatMode.SetMode", mode="HEAT"),
        ]
        assert [error(r)[:2] for r in bad] == [(400, "INVALID_ARGUMENT")] * 6


async def test_quotas_are_per_device_command_and_per_user() -> None:
    async with client() as c:
        codes = [
            (
                await c.command(STUDY, "ThermostatTemperatureSetpoint.SetHeat", heatCelsius=19)
            ).status_code
            for _ in range(6)
        ]
        assert codes == [200] * 5 + [429]
        more = [
            await c.command(LOUNGE, "ThermostatTemperatureSetpoint.SetCool", coolCelsius=24),
            await c.command(LOUNGE, "Fan.SetTimer", timerMode="OFF"),
            await c.command(LOUNGE, "ThermostatEco.SetMode", mode="OFF"),
            await c.command(LOUNGE, "ThermostatMode.SetMode", mode="COOL"),
            await c.command(LOUNGE, "ThermostatMode.SetMode", mode="COOL"),
            await c.command(LOUNGE, "ThermostatMode.SetMode", mode="COOL"),  # the 11th call
        ]
        assert [r.status_code for r in more] == [200] * 5 + [429]
        _code, status, message = error(more[-1])
        assert status == "RESOURCE_EXHAUSTED"
        assert "executeCommand" in message


async def test_windows_reset_after_a_minute() -> None:
    async with client(quotas=sdm.Quotas(command_per_device_per_min=1, window_s=0.2)) as c:
        first = await c.command(STUDY, "ThermostatTemperatureSetpoint.SetHeat", heatCelsius=19)
        second = await c.command(STUDY, "ThermostatTemperatureSetpoint.SetHeat", heatCelsius=19)
        await anyio.sleep(0.25)
        third = await c.command(STUDY, "ThermostatTemperatureSetpoint.SetHeat", heatCelsius=19)
        assert [first.status_code, second.status_code, third.status_code] == [200, 429, 200]


# -- Pub/Sub -----------------------------------------------------------------------------------


async def test_events_start_after_the_first_device_list() -> None:
    async with client() as c:
        c.sim.home.set_ambient(LOUNGE, 26.0)
        assert await c.pull() == []
        await c.get("enterprises/sim-project/devices")
        c.sim.home.set_ambient(LOUNGE, 26.5)
        received = await c.pull()
        assert len(received) == 1
        assert received[0]["deliveryAttempt"] == 1
        event = data(received[0])
        assert event["resourceUpdate"]["name"] == "enterprises/sim-project/devices/" + LOUNGE
        traits = event["resourceUpdate"]["traits"]
        assert traits["sdm.devices.traits.Temperature"] == {"ambientTemperatureCelsius": 26.5}
        assert event["resourceGroup"] == [event["resourceUpdate"]["name"]]
        assert event["timestamp"].endswith("Z")
        assert event["userId"]


async def test_an_empty_long_poll_answers_an_empty_object() -> None:
    async with client(pull_wait_s=0.2) as c:
        started = anyio.current_time()
        response = await c.pubsub("pull", {"maxMessages": 5})
        assert (response.status_code, response.json()) == (200, {})
        assert anyio.current_time() - started >= 0.19


async def test_a_long_poll_answers_as_soon_as_a_message_is_published() -> None:
    async with client(pull_wait_s=5.0) as c:
        await c.get("enterprises/sim-project/devices")
        async with anyio.create_task_group() as tg:
            tg.start_soon(_later, 0.1, lambda: c.sim.home.doorbell_chime("doorbell-front"))
            with anyio.fail_after(2):
                received = await c.pull()
        event = data(received[0])
        assert event["eventThreadState"] == "STARTED"
        chime = event["resourceUpdate"]["events"]["sdm.devices.events.DoorbellChime.Chime"]
        assert chime["eventSessionId"] == event["eventThreadId"]
        # the doorbell has CameraClipPreview, so its chime thread carries a clip too
        clip = event["resourceUpdate"]["events"]["sdm.devices.events.CameraClipPreview.ClipPreview"]
        assert clip["eventSessionId"] == event["eventThreadId"]
        assert clip["previewUrl"].endswith(".mp4")


async def test_unacknowledged_messages_come_again_after_the_deadline() -> None:
    async with client(ack_deadline_s=0.2, pull_wait_s=0.5) as c:
        await c.get("enterprises/sim-project/devices")
        c.sim.home.set_ambient(LOUNGE, 26.0)
        first = await c.pull()
        again = await c.pull()  # waits for the deadline to pass
        assert data(again[0]) == data(first[0])
        assert again[0]["deliveryAttempt"] == 2
        assert again[0]["ackId"] != first[0]["ackId"]
        stale = await c.pubsub("acknowledge", {"ackIds": [first[0]["ackId"]]})
        assert stale.status_code == 200  # an expired ackId is accepted, and does nothing
        assert c.sim.subscription.backlog == 1
        assert (await c.pubsub("acknowledge", {"ackIds": [again[0]["ackId"]]})).json() == {}
        assert c.sim.subscription.backlog == 0
        assert await c.pull() == []


async def test_modify_ack_deadline_extends_or_nacks() -> None:
    async with client(ack_deadline_s=0.2, pull_wait_s=0.3) as c:
        await c.get("enterprises/sim-project/devices")
        c.sim.home.set_ambient(LOUNGE, 26.0)
        first = await c.pull()
        body = {"ackIds": [first[0]["ackId"]], "ackDeadlineSeconds": 10}
        assert (await c.pubsub("modifyAckDeadline", body)).status_code == 200
        assert await c.pull() == []  # extended: not redelivered after 0.2 s
        nack = {"ackIds": [first[0]["ackId"]], "ackDeadlineSeconds": 0}
        await c.pubsub("modifyAckDeadline", nack)
        started = anyio.current_time()
        assert len(await c.pull()) == 1
        assert anyio.current_time() - started < 0.2
        too_long = {"ackIds": ["x"], "ackDeadlineSeconds": 601}
        assert error(await c.pubsub("modifyAckDeadline", too_long))[1] == "INVALID_ARGUMENT"


async def test_the_openhab_request_fixtures_are_accepted() -> None:
    async with client() as c:
        pull = json.loads((FIXTURES / "openhab-pull-subscription-request.json").read_text())
        ack = json.loads((FIXTURES / "openhab-acknowledge-subscription-request.json").read_text())
        assert (await c.pubsub("pull", pull)).status_code == 200
        assert (await c.pubsub("acknowledge", ack)).status_code == 200
        assert error(await c.pubsub("pull", {}))[1] == "INVALID_ARGUMENT"
        url = f"{c.sim.pubsub_url}/projects/sim-gcp/subscriptions/other:pull"
        missing = await c.http.post(url, json=pull, headers=c._auth())
        assert error(missing)[:2] == (404, "NOT_FOUND")


async def test_relations_are_published_when_devices_come_go_and_move() -> None:
    async with client() as c:
        await c.get("enterprises/sim-project/devices")
        c.sim.home.move("camera-garden", room="Patio")
        await anyio.sleep(0.01)
        c.sim.home.remove("camera-garden")
        kinds = [data(m)["relationUpdate"] for m in await c.pull()]
        name = "enterprises/sim-project/devices/camera-garden"
        assert kinds == [
            {
                "type": "UPDATED",
                "subject": "enterprises/sim-project/structures/structure-villa/rooms/room-patio",
                "object": name,
            },
            {
                "type": "DELETED",
                "subject": "enterprises/sim-project/structures/structure-villa",
                "object": name,
            },
        ]


async def _later(delay_s: float, action: Any) -> None:
    await anyio.sleep(delay_s)
    action()
