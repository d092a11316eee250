"""A Netatmo client nobody here wrote (pyatmo, Home Assistant's library) against our simulator.

If pyatmo can authenticate, read the topology and status and set a room setpoint, the
simulator speaks Netatmo as the real clients understand it, not just as roost does.
pyatmo leaves OAuth to its caller (`AbstractAsyncAuth`); the subclass below refreshes
against the simulator's token endpoint and keeps the rotated refresh token, as HA does.
"""

from __future__ import annotations

import time

import aiohttp
import pytest
from pyatmo import AsyncAccount
from pyatmo.auth import AbstractAsyncAuth

from roost.simulator import netatmo
from roost.simulator.home import SimHome

pytestmark = pytest.mark.anyio

HOME_ID = "structure-home"
LIVING = "thermostat-living-room"


class SimAuth(AbstractAsyncAuth):
    def __init__(self, session: aiohttp.ClientSession, sim: netatmo.NetatmoSimulator) -> None:
        super().__init__(session, base_url=sim.url + "/")
        self._sim = sim
        self._refresh_token = sim.refresh_token
        self._access_token: str | None = None

    async def async_get_access_token(self) -> str:
        if self._access_token is None:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh_token,
                "client_id": self._sim.client_id,
                "client_secret": self._sim.client_secret,
            }
            async with self.websession.post(f"{self._sim.url}/oauth2/token", data=form) as resp:
                assert resp.status == 200
                body = await resp.json()
            self._access_token = body["access_token"]
            self._refresh_token = body["refresh_token"]
        return self._access_token


async def test_pyatmo_reads_our_home_and_sets_a_room_setpoint() -> None:
    async with netatmo.serve(SimHome.demo()) as sim, aiohttp.ClientSession() as session:
        account = AsyncAccount(SimAuth(session, sim))
        await account.async_update_topology()
        assert set(account.homes) == {HOME_ID}
        home = account.homes[HOME_ID]
        assert home.name == "Home"
        assert {room.name for room in home.rooms.values()} >= {"Living Room", "Bedroom"}
        assert sim.refreshes == 1

        await account.async_update_status(HOME_ID)
        room = home.rooms[LIVING]
        assert room.therm_measured_temperature == 19.5
        assert room.therm_setpoint_temperature == 20.0
        assert room.therm_setpoint_mode == "schedule"
        assert room.reachable is True

        end = int(time.time()) + 3600
        await room.async_therm_manual(22.5, end)
        assert sim.writes[-1] == (
            "setroomthermpoint",
            {
                "home_id": HOME_ID,
                "room_id": LIVING,
                "mode": "manual",
                "temp": "22.5",
                "endtime": str(end),
            },
        )
        assert sim.home.thermostat(LIVING).target_c == 22.5

        await account.async_update_status(HOME_ID)
        assert room.therm_setpoint_temperature == 22.5
        assert room.therm_setpoint_mode == "manual"
        assert room.therm_setpoint_end_time == end

        await home.async_set_thermmode("away")
        await account.async_update_status(HOME_ID)
        assert room.therm_setpoint_mode == "away"


async def test_pyatmo_room_frost_guard_is_accepted() -> None:
    async with netatmo.serve(SimHome.demo()) as sim, aiohttp.ClientSession() as session:
        account = AsyncAccount(SimAuth(session, sim))
        await account.async_update_topology()
        await account.async_update_status(HOME_ID)
        room = account.homes[HOME_ID].rooms[LIVING]
        end = int(time.time()) + 3600
        await room.async_therm_frostguard(end)
        assert sim.writes[-1][1]["mode"] == "hg"
        await account.async_update_status(HOME_ID)
        assert room.therm_setpoint_mode == "hg"
        assert room.therm_setpoint_temperature == netatmo.HG_TEMP_C


async def test_pyatmo_registers_its_webhook_at_webhooks_v1_replacing_another() -> None:
    async with netatmo.serve(SimHome.demo()) as sim, aiohttp.ClientSession() as session:
        auth = SimAuth(session, sim)
        await auth.async_addwebhook("https://hooks.example/one")
        assert sim.webhook_url == "https://hooks.example/one"
        assert await auth.async_list_webhooks() == ["https://hooks.example/one"]
        # a second URL conflicts (409); pyatmo drops the incumbent and registers again
        await auth.async_addwebhook("https://hooks.example/two")
        assert sim.webhook_url == "https://hooks.example/two"
        assert sim.webhooks_v1_registrations == 2
        await auth.async_dropwebhook()
        assert sim.webhook_url is None
