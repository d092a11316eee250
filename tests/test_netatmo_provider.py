"""The Netatmo provider against the Netatmo simulator, over HTTP on 127.0.0.1.

Nothing of roost is mocked: the provider talks to `roost.simulator.netatmo` through a real
socket and reports into a small recording `ChangeSink` (a test double of the interface).
Every wait is bounded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from roost.core.clock import VirtualClock
from roost.core.commands import (
    Action,
    Command,
    CommandResult,
    FailureReason,
    SetCool,
    SetEco,
    SetHeat,
    SetMode,
    SetPresence,
)
from roost.core.events import ConnectionState, Person
from roost.core.model import AlarmState, Presence, Thermostat, ThermostatMode
from roost.providers.base import MemoryProviderMemory, MemoryTokenStore, TokenSet
from roost.providers.netatmo.budget import RequestBudget, Window
from roost.providers.netatmo.provider import NetatmoProvider
from roost.providers.netatmo.webhook import sign
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from tests.provider_kit import loopback_listen, make
from tests.recording import RecordingSink as BaseSink

pytestmark = pytest.mark.anyio

HOME_ID = "structure-home"
LIVING = "thermostat-living-room"
ALARM = "alarm-hallway"
CO = "alarm-hallway-co"
DOORBELL = "camera-front-door"
WAIT_S = 5.0


class RecordingSink(BaseSink):
    def co_states(self) -> list[AlarmState]:
        return [c.value for p in self.patches for c in p if c.attribute == "co"]


@dataclass
class Running:
    sim: netatmo.NetatmoSimulator
    provider: NetatmoProvider
    sink: RecordingSink
    done: anyio.Event


def provider_for(sim: netatmo.NetatmoSimulator, **options: Any) -> NetatmoProvider:
    settings: dict[str, Any] = {
        "api_url": sim.url,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "refresh_token": sim.refresh_token,
        "fast_poll_s": 0.2,
        "slow_poll_s": 0.5,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
    } | options
    return make(NetatmoProvider, "netatmo", **settings)


@asynccontextmanager
async def polling(
    sim: netatmo.NetatmoSimulator, provider: NetatmoProvider
) -> AsyncIterator[Running]:
    sink = RecordingSink()
    done = anyio.Event()
    async with provider, anyio.create_task_group() as tg:

        async def run() -> None:
            await provider.run(sink)
            done.set()

        tg.start_soon(run)
        try:
            await sink.wait_for(lambda: bool(sink.snapshots) or done.is_set())
            yield Running(sim, provider, sink, done)
        finally:
            tg.cancel_scope.cancel()


@asynccontextmanager
async def running(home: SimHome | None = None, **options: Any) -> AsyncIterator[Running]:
    async with (
        netatmo.serve(home or SimHome.demo()) as sim,
        polling(sim, provider_for(sim, **options)) as r,
    ):
        yield r


def command(action: Action, target: str = LIVING, *, deadline_s: float = 60) -> Command:
    now = datetime.now(UTC)
    return Command(
        id=f"cmd-{id(action)}",
        account="acct",
        target=target,
        action=action,
        issued_at=now,
        deadline=now + timedelta(seconds=deadline_s),
    )


# --- subscription --------------------------------------------------------------------------


async def test_the_first_poll_is_the_whole_home() -> None:
    async with running() as r:
        home = r.sink.latest
        living = home.devices[LIVING]
        assert isinstance(living, Thermostat)
        assert (living.mode, living.heat_setpoint_c, living.ambient_c) == (
            ThermostatMode.HEAT,
            20.0,
            19.5,
        )
        assert home.structures[HOME_ID].presence is Presence.HOME
        assert {CO, f"{ALARM}-smoke", DOORBELL} <= set(home.devices)
        assert r.sink.statuses[0][0] is ConnectionState.CONNECTED


async def test_a_change_in_the_cloud_arrives_by_polling() -> None:
    async with running() as r:
        r.sim.home.set_ambient(LIVING, 17.0)
        await r.sink.wait_for(lambda: r.sink.latest.devices[LIVING].ambient_c == 17.0)  # type: ignore[attr-defined]
        r.sim.home.set_away(HOME_ID, True)
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)


async def test_a_co_event_is_reported_once_even_across_a_restart() -> None:
    memory = MemoryProviderMemory()
    async with netatmo.serve(SimHome.demo()) as sim:
        async with polling(sim, provider_for(sim, memory=memory)) as first:
            sim.home.set_co(ALARM, "emergency")
            await first.sink.wait_for(lambda: first.sink.co_states() == [AlarmState.EMERGENCY])
            sim.home.camera_event(DOORBELL, person=True)
            await first.sink.wait_for(lambda: len(first.sink.device_events) == 1)
            assert isinstance(first.sink.device_events[0], Person)
            assert first.sink.device_events[0].device == DOORBELL
            assert first.provider.home.devices[CO].co is AlarmState.EMERGENCY  # type: ignore[union-attr,attr-defined]
        sim.home.set_co(ALARM, "ok")  # while roost is down
        async with polling(sim, provider_for(sim, memory=memory)) as second:
            # the baseline already knows the emergency; the clearing is news
            assert second.sink.snapshots[0].devices[CO].co is AlarmState.EMERGENCY  # type: ignore[attr-defined]
            await second.sink.wait_for(lambda: second.sink.co_states() == [AlarmState.OK])
            rounds = second.provider.stats.polls
            await second.sink.wait_for(lambda: second.provider.stats.polls > rounds + 3)
            assert second.sink.co_states() == [AlarmState.OK]
            assert second.sink.device_events == []


async def test_history_from_before_the_first_start_is_not_reported() -> None:
    home = SimHome.demo()
    async with netatmo.serve(home) as sim:
        home.set_co(ALARM, "warning")
        with anyio.fail_after(WAIT_S):
            while not sim.events:
                await anyio.sleep(0.01)
        async with polling(sim, provider_for(sim)) as r:
            assert r.sink.latest.devices[CO].co is AlarmState.WARNING  # type: ignore[attr-defined]
            rounds = r.provider.stats.polls
            await r.sink.wait_for(lambda: r.provider.stats.polls > rounds + 1)
            assert r.sink.patches == []


# --- tokens --------------------------------------------------------------------------------


class CheckingStore(MemoryTokenStore):
    """Records each save, and what the simulator had seen of the new token at that moment."""

    def __init__(self, sim: netatmo.NetatmoSimulator) -> None:
        super().__init__()
        self.sim = sim
        self.saved: list[TokenSet] = []

    async def save(self, account: str, tokens: TokenSet) -> None:
        # rotated, and the new access token not used yet
        assert tokens.refresh_token == self.sim.refresh_token
        self.saved.append(tokens)
        self.requests_at_save = len(self.sim.requests)
        await super().save(account, tokens)


async def test_rotated_refresh_tokens_are_saved_before_use_and_survive_a_restart() -> None:
    async with netatmo.serve(SimHome.demo()) as sim:
        seed = sim.refresh_token
        store = CheckingStore(sim)
        async with polling(sim, provider_for(sim, tokens=store, refresh_token=seed)) as r:
            assert len(store.saved) == 1
            assert store.requests_at_save == 0
            sim.expire_access_tokens()  # Netatmo says code 3: refresh, retry, carry on
            rounds = r.provider.stats.polls
            await r.sink.wait_for(lambda: r.provider.stats.polls > rounds + 1)
            assert len(store.saved) == 2
            assert sim.refreshes == 2
            assert [s for s, _ in r.sink.statuses] == [ConnectionState.CONNECTED]
        # the seed is spent; a restart must use the saved, rotated token
        async with polling(sim, provider_for(sim, tokens=store, refresh_token=seed)) as again:
            assert again.sink.snapshots
            assert not again.done.is_set()


async def test_a_revoked_app_stops_the_subscription_with_auth_failed() -> None:
    async with running() as r:
        r.sim.revoke()
        await r.sink.wait_for(r.done.is_set)
        assert r.sink.statuses[-1][0] is ConnectionState.AUTH_FAILED
        result = await r.provider.execute(command(SetHeat(21.0)))
        assert result.reason is FailureReason.UNAUTHORIZED


async def test_a_missing_scope_is_an_unauthorized_write() -> None:
    async with (
        netatmo.serve(SimHome.demo(), scopes=("read_thermostat",)) as sim,
        polling(sim, provider_for(sim)) as r,
    ):
        result = await r.provider.execute(command(SetHeat(21.0)))
        assert result.reason is FailureReason.UNAUTHORIZED
        assert "scope" in result.detail


# --- writes --------------------------------------------------------------------------------


async def write_and_see(
    r: Running, action: Action, target: str = LIVING
) -> tuple[CommandResult, dict[str, Any]]:
    writes = len(r.sim.writes)
    result = await r.provider.execute(command(action, target))
    assert result.ok, result
    endpoint, params = r.sim.writes[writes]
    return result, {"endpoint": endpoint, **params}


async def test_set_heat_is_a_manual_room_setpoint_with_an_end_time() -> None:
    async with running() as r:
        before = datetime.now(UTC)
        _, sent = await write_and_see(r, SetHeat(21.5))
        assert sent["endpoint"] == "setroomthermpoint"
        assert (sent["room_id"], sent["mode"], sent["temp"]) == (LIVING, "manual", "21.5")
        end = datetime.fromtimestamp(int(sent["endtime"]), UTC)
        assert timedelta(minutes=179) < end - before < timedelta(minutes=181)
        await r.sink.wait_for(
            lambda: r.sink.latest.devices[LIVING].heat_setpoint_c == 21.5  # type: ignore[attr-defined]
        )


async def test_eco_is_the_home_away_mode_and_back_to_schedule() -> None:
    async with running() as r:
        _, sent = await write_and_see(r, SetEco(True))
        assert (sent["endpoint"], sent["mode"]) == ("setthermmode", "away")
        await r.sink.wait_for(
            lambda: all(t.mode is ThermostatMode.ECO for t in r.sink.latest.thermostats())
        )
        assert r.sink.latest.structures[HOME_ID].presence is Presence.HOME  # people, not heating
        _, sent = await write_and_see(r, SetMode(ThermostatMode.HEAT))
        assert (sent["endpoint"], sent["mode"]) == ("setthermmode", "schedule")
        await r.sink.wait_for(
            lambda: all(t.mode is ThermostatMode.HEAT for t in r.sink.latest.thermostats())
        )
        _, sent = await write_and_see(r, SetMode(ThermostatMode.OFF))
        assert sent["endpoint"] == "setstate"
        assert sent["home"]["rooms"] == [{"id": LIVING, "therm_setpoint_mode": "off"}]


async def test_presence_is_the_persons_of_the_home() -> None:
    async with running() as r:
        _, sent = await write_and_see(r, SetPresence(Presence.AWAY), HOME_ID)
        assert sent["endpoint"] == "setpersonsaway"
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)
        _, sent = await write_and_see(r, SetPresence(Presence.HOME), HOME_ID)
        assert sent["endpoint"] == "setpersonshome"
        assert len(sent["person_ids[]"]) == 2


async def test_refusals_are_typed() -> None:
    async with running() as r:
        assert (await r.provider.execute(command(SetCool(24.0)))).reason is FailureReason.INVALID
        missing = await r.provider.execute(command(SetHeat(20.0), "nowhere"))
        assert missing.reason is FailureReason.NOT_FOUND
        r.sim.fail_next("write", 1, 403, {"error": {"code": 26, "message": "User usage reached"}})
        limited = await r.provider.execute(command(SetHeat(20.0)))
        assert limited.reason is FailureReason.RATE_LIMITED
        r.sim.fail_next("write", 1, 500)
        assert (await r.provider.execute(command(SetHeat(20.0)))).reason is (
            FailureReason.SERVER_ERROR
        )
        out_of_range = await r.provider.execute(command(SetHeat(35.0)))
        assert out_of_range.reason is FailureReason.INVALID
        assert "code 21" in out_of_range.detail


async def test_a_write_that_cannot_get_a_slot_before_its_deadline_fails_fast() -> None:
    async with netatmo.serve(SimHome.demo()) as sim:
        budget = RequestBudget(VirtualClock(), (Window(10.0, 4),))
        async with polling(sim, provider_for(sim, budget=budget, slow_poll_s=30)) as r:
            while budget.wait_s(poll=False) == 0:
                await budget.acquire(poll=False)
            result = await r.provider.execute(command(SetHeat(21.0), deadline_s=5))
            assert result.reason is FailureReason.RATE_LIMITED
            assert result.retry_after_s is not None
            assert result.retry_after_s > 5


# --- webhooks ------------------------------------------------------------------------------


async def post(url: str, body: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Netatmo-secret"] = signature
    async with httpx.AsyncClient() as client:
        return (await client.post(url, content=body, headers=headers)).status_code


async def test_a_signed_webhook_wakes_the_poll_and_a_forged_one_is_refused() -> None:
    listen = loopback_listen()
    async with running(slow_poll_s=30.0, fast_poll_s=30.0, webhook_listen=listen) as r:
        url = f"http://127.0.0.1:{r.provider.webhooks.port}/"
        rounds = r.provider.stats.polls
        body = json.dumps({"push_type": "NCO-co_detected", "home_id": HOME_ID}).encode()
        assert await post(url, body, sign("not-the-secret", body)) == 403
        assert await post(url, body, None) == 403
        assert r.provider.webhooks.stats.rejected == 2
        await anyio.sleep(0.5)
        assert r.provider.stats.polls == rounds  # a forgery wakes nothing

        r.sim.webhook_url = url  # as addwebhook would
        r.sim.home.set_co(ALARM, "warning")  # the simulator signs with the client secret
        await r.sink.wait_for(lambda: r.sink.co_states() == [AlarmState.WARNING], limit_s=3)
        assert r.provider.webhooks.stats.accepted == 1


# --- the budget ----------------------------------------------------------------------------


async def test_the_budget_keeps_every_window_and_reserves_for_writes_and_polls() -> None:
    clock = VirtualClock()
    budget = RequestBudget(clock, (Window(10.0, 6, 2, 1), Window(60.0, 9)))
    for _ in range(4):
        await budget.acquire(poll=True)
    assert budget.wait_s(poll=True) == pytest.approx(10.0)  # polls leave 2 for writes
    assert budget.wait_s(poll=False) == 0
    await budget.acquire(poll=False)
    assert budget.wait_s(poll=False) == pytest.approx(10.0)  # writes leave 1 for polls
    await clock.advance(10.5)
    for _ in range(4):
        await budget.acquire(poll=False)
    assert budget.used(60.0) == 9
    assert budget.wait_s(poll=True) == pytest.approx(49.5)  # the longer window is full


async def test_a_refused_webhook_never_stops_the_poll_and_is_retried_slowly() -> None:
    """Netatmo refuses a webhook URL it cannot reach (code 21). The account must keep
    polling (status degraded, saying why) instead of re-reading homesdata in a loop."""
    async with netatmo.serve(SimHome.demo()) as sim:
        sim.refuse_webhooks = True
        provider = provider_for(sim, webhook_url="https://hooks.example/netatmo")
        async with polling(sim, provider) as r:
            await r.sink.wait_for(lambda: r.provider.stats.polls >= 3)
            assert ConnectionState.DEGRADED in r.sink.states
            assert "webhook" in r.sink.statuses[-1][1]
            homesdata = [q for q in sim.requests if q.endpoint == "homesdata"]
            assert len(homesdata) == 1  # the topology is read once, not once per refusal
            assert sim.webhook_url is None
            sim.home.set_co(ALARM, "emergency")
            await r.sink.wait_for(lambda: AlarmState.EMERGENCY in r.sink.co_states())


async def test_the_webhook_is_registered_at_webhooks_v1_like_pyatmo() -> None:
    async with netatmo.serve(SimHome.demo()) as sim:
        sim.webhook_url = "https://someone-else.example/"  # a conflict: 409, then replaced
        provider = provider_for(sim, webhook_url="https://hooks.example/netatmo")
        async with polling(sim, provider) as r:
            await r.sink.wait_for(lambda: sim.webhook_url == "https://hooks.example/netatmo")
            assert sim.webhooks_v1_registrations == 1
            assert r.provider.webhook_problem is None
