"""A Google SDM client nobody here wrote (google-nest-sdm, Home Assistant's library) against
our SDM simulator.

It lists structures and devices, parses their traits, executes SetHeat, SetMode and the Eco
mode, maps the simulator's error envelopes to its own exceptions, and parses messages pulled
from our Pub/Sub with its `EventMessage`, so that its `DeviceManager`, fed only by those
messages, agrees with a fresh REST read. google-nest-sdm receives events through Google's
gRPC streaming pull (`google-cloud-pubsub`), which cannot reach a local REST emulator; the
messages are therefore pulled over Pub/Sub's REST `:pull` here and handed to the client's
own parser, which is the part that must understand the payloads.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import anyio
import pytest
from google_nest_sdm.auth import AbstractAuth
from google_nest_sdm.device_manager import DeviceManager
from google_nest_sdm.event import EventMessage
from google_nest_sdm.exceptions import ApiException, AuthException
from google_nest_sdm.google_nest_api import GoogleNestAPI

from roost.simulator import sdm

pytestmark = pytest.mark.anyio

SETPOINT = "sdm.devices.traits.ThermostatTemperatureSetpoint"
MODE = "sdm.devices.traits.ThermostatMode"
ECO = "sdm.devices.traits.ThermostatEco"
TEMPERATURE = "sdm.devices.traits.Temperature"
LOUNGE = "thermostat-lounge"


class SimAuth(AbstractAuth):
    """Refreshes against the simulator's token endpoint, as Home Assistant's auth does."""

    def __init__(self, session: aiohttp.ClientSession, sim: sdm.SdmSimulator) -> None:
        super().__init__(session, sim.api_url)
        self._sim = sim
        self.token: str | None = None

    async def async_get_access_token(self) -> str:
        if self.token is None:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self._sim.refresh_token,
                "client_id": self._sim.client_id,
                "client_secret": self._sim.client_secret,
            }
            async with self._websession.post(self._sim.token_url, data=form) as answer:
                assert answer.status == 200
                self.token = (await answer.json())["access_token"]
        return self.token


async def _pull(session: aiohttp.ClientSession, sim: sdm.SdmSimulator, token: str) -> list[Any]:
    """Pull and acknowledge what is waiting, over Pub/Sub REST; the decoded payloads."""
    base = f"{sim.pubsub_url}/{sim.subscription.name}"
    headers = {"Authorization": f"Bearer {token}"}
    body = {"maxMessages": 100, "returnImmediately": True}
    async with session.post(f"{base}:pull", json=body, headers=headers) as answer:
        assert answer.status == 200
        received = (await answer.json()).get("receivedMessages", [])
    if received:
        ack = {"ackIds": [m["ackId"] for m in received]}
        async with session.post(f"{base}:acknowledge", json=ack, headers=headers) as answer:
            assert answer.status == 200
    return [json.loads(base64.b64decode(m["message"]["data"])) for m in received]


def _lounge(devices: list[Any], sim: sdm.SdmSimulator) -> Any:
    return next(d for d in devices if d.name == sim.names.device(LOUNGE))


async def test_google_nest_sdm_reads_commands_and_follows_events() -> None:
    async with sdm.serve(sdm.demo_home()) as sim, aiohttp.ClientSession() as session:
        auth = SimAuth(session, sim)
        api = GoogleNestAPI(auth, sim.names.project_id)
        structures = await api.async_get_structures()
        assert [s.info.custom_name for s in structures if s.info] == ["Villa"]
        devices = await api.async_get_devices()
        lounge = _lounge(devices, sim)
        assert lounge.traits[MODE].mode == "COOL"
        assert lounge.traits[SETPOINT].cool_celsius == 27.0
        assert lounge.traits[TEMPERATURE].ambient_temperature_celsius == 25.0

        manager = DeviceManager()
        for device in devices:
            manager.add_device(device)
        await _pull(session, sim, auth.token or "")  # drop what the start published

        await lounge.traits[MODE].set_mode("HEAT")
        await lounge.traits[SETPOINT].set_heat(21.5)
        await lounge.traits[ECO].set_mode("MANUAL_ECO")
        assert sim.home.thermostat(LOUNGE).mode == "eco"
        await lounge.traits[ECO].set_mode("OFF")
        sim.home.set_ambient(LOUNGE, 23.0)

        with_events = 0
        for _ in range(20):
            for payload in await _pull(session, sim, auth.token or ""):
                await manager.async_handle_event(EventMessage.create_event(payload, auth))
                with_events += 1
            followed = manager.devices[sim.names.device(LOUNGE)]
            if followed.traits[TEMPERATURE].ambient_temperature_celsius == 23.0:
                break
            await anyio.sleep(0.05)
        assert with_events > 0

        fresh = _lounge(await api.async_get_devices(), sim)
        followed = manager.devices[sim.names.device(LOUNGE)]
        for trait in (MODE, ECO, TEMPERATURE):
            assert followed.traits[trait].to_dict() == fresh.traits[trait].to_dict(), trait
        assert fresh.traits[MODE].mode == "HEAT"
        assert fresh.traits[SETPOINT].heat_celsius == 21.5


async def test_google_nest_sdm_maps_the_simulators_errors_to_its_exceptions() -> None:
    async with sdm.serve(sdm.demo_home()) as sim, aiohttp.ClientSession() as session:
        auth = SimAuth(session, sim)
        api = GoogleNestAPI(auth, sim.names.project_id)
        lounge = _lounge(await api.async_get_devices(), sim)
        with pytest.raises(ApiException, match=r"INVALID_ARGUMENT|FAILED_PRECONDITION"):
            await lounge.traits[SETPOINT].set_heat(99.0)  # outside the device's range
        sim.expire_access_tokens()
        with pytest.raises(AuthException):
            await api.async_get_devices()
