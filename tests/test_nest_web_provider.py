"""The Nest web provider against the Nest web simulator, over HTTP on 127.0.0.1.

Nothing of roost is mocked: the provider talks to `roost.simulator.nest_web` through a real
socket and reports into a small recording `ChangeSink` (a test double of the interface).
The server's long-poll hold is short (0.2 s) and every wait is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from roost.config.load import validated
from roost.core.clock import VirtualClock
from roost.core.commands import (
    Action,
    Command,
    FailureReason,
    SetEco,
    SetFanTimer,
    SetHeat,
    SetMode,
    SetPresence,
)
from roost.core.events import ConnectionState
from roost.core.model import AlarmState, Home, Presence, SmokeCoAlarm, Thermostat, ThermostatMode
from roost.providers.base import MemoryTokenStore, TokenSet, write_limits
from roost.providers.nest_web import NestWebAccount
from roost.providers.nest_web.provider import WRITE_LIMITS, NestWebProvider
from roost.providers.registry import ProviderContext, build_provider
from roost.simulator import nest_web
from roost.simulator.home import SimHome, SimSmokeCoAlarm
from tests.provider_kit import make
from tests.recording import RecordingSink as BaseSink

pytestmark = pytest.mark.anyio

EMAIL, PASSWORD = "owner@example.com", "secret"
HOME_ID = "structure-home"
LIVING, BEDROOM, ALARM = "thermostat-living-room", "thermostat-bedroom", "alarm-hallway"
WAIT_S = 5.0


class RecordingSink(BaseSink):
    async def snapshot(self, account: str, home: Home, at: datetime) -> None:
        assert account == "acct"
        await super().snapshot(account, home, at)

    def device(self, device_id: str) -> Any:
        return self.latest.devices[device_id]


@dataclass
class Running:
    sim: nest_web.NestWebSimulator
    provider: NestWebProvider
    sink: RecordingSink
    done: anyio.Event


@asynccontextmanager
async def running(home: SimHome | None = None, **provider: Any) -> AsyncIterator[Running]:
    """The demo home served by the simulator, with a provider subscribed to it."""
    async with nest_web.serve(
        home or SimHome.demo(), email=EMAIL, password=PASSWORD, hold_s=0.2
    ) as sim:
        options: dict[str, Any] = {
            "email": EMAIL,
            "password": PASSWORD,
            "subscribe_timeout_s": 2.0,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
        } | provider
        async with make(NestWebProvider, "nest_web", api_url=sim.url, **options) as web:
            sink = RecordingSink()
            done = anyio.Event()

            async def run() -> None:
                await web.run(sink)
                done.set()

            failure: Exception | None = None
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run)
                try:
                    yield Running(sim, web, sink, done)
                except Exception as error:  # re-raised below, not wrapped in a group
                    failure = error
                tasks.cancel_scope.cancel()
            if failure is not None:
                raise failure


def command(target: str, action: Action) -> Command:
    now = datetime.now(UTC)
    return Command("cmd-1", "acct", target, action, now, now + timedelta(seconds=30))


async def eventually(condition: Callable[[], bool], limit_s: float = WAIT_S) -> None:
    """Poll for something that does not reach the sink."""
    with anyio.fail_after(limit_s):
        while not condition():
            await anyio.sleep(0.01)


async def connected(r: Running) -> None:
    await r.sink.wait_for(lambda: bool(r.sink.snapshots))


# --- the subscription -----------------------------------------------------------------------


async def test_login_then_the_whole_home_normalized() -> None:
    async with running() as r:
        await connected(r)
        home = r.sink.latest
        assert r.sink.states == [ConnectionState.CONNECTED]
        assert home.structures[HOME_ID].presence is Presence.HOME
        living = home.devices[LIVING]
        assert isinstance(living, Thermostat)
        assert living.name == "Living Room"
        assert living.room == "Living Room"
        assert living.mode is ThermostatMode.HEAT
        assert living.heat_setpoint_c == 20.0
        assert (living.can_cool, living.has_fan, living.online) == (True, True, True)
        alarm = home.devices[ALARM]
        assert isinstance(alarm, SmokeCoAlarm)
        assert (alarm.name, alarm.room, alarm.co) == ("Hallway", "Hallway", AlarmState.OK)
        assert "camera-front-door" not in home.devices  # cameras are not in this API's buckets
        assert (r.provider.stats.logins, r.provider.stats.refreshes) == (1, 1)


async def test_a_bucket_change_arrives_through_the_long_poll() -> None:
    async with running() as r:
        await connected(r)
        r.sim.home.set_co(ALARM, "emergency")
        await r.sink.wait_for(lambda: r.sink.device(ALARM).co is AlarmState.EMERGENCY)
        r.sim.home.set_away(HOME_ID, True)
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)
        r.sim.home.set_online(BEDROOM, False)
        await r.sink.wait_for(lambda: r.sink.device(BEDROOM).online is False)
        assert r.provider.stats.refreshes == 1  # all of it through subscribe
        assert r.provider.stats.updates >= 3
        assert r.sink.states == [ConnectionState.CONNECTED]


async def test_empty_replies_after_the_servers_hold_just_ask_again() -> None:
    async with running() as r:
        await connected(r)
        await eventually(lambda: r.provider.stats.empty_replies >= 2)
        assert r.sink.states == [ConnectionState.CONNECTED]
        assert len(r.sink.snapshots) == 1


async def test_a_dropped_long_poll_resyncs_without_losing_the_change() -> None:
    async with running() as r:
        await connected(r)
        await eventually(lambda: r.sim.server.open_streams == 1)
        r.sim.drop_subscriptions()
        r.sim.home.set_co(ALARM, "warning")  # while nobody is subscribed
        await r.sink.wait_for(lambda: r.sink.device(ALARM).co is AlarmState.WARNING)
        assert r.sink.states == [
            ConnectionState.CONNECTED,
            ConnectionState.DISCONNECTED,
            ConnectionState.CONNECTED,
        ]
        assert r.provider.stats.refreshes == 2
        assert r.provider.stats.logins == 1  # the session survived


async def test_an_expired_session_logs_in_again_at_once() -> None:
    async with running() as r:
        await connected(r)
        r.sim.expire_sessions()
        r.sim.home.set_away(HOME_ID, True)
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)
        assert r.provider.stats.logins == 2
        assert r.sink.states[-1] is ConnectionState.CONNECTED


async def test_the_session_is_renewed_by_logging_in_again_after_twenty_days() -> None:
    clock = VirtualClock()
    async with running(clock=clock) as r:
        await connected(r)
        await clock.advance(timedelta(days=21).total_seconds())
        await eventually(lambda: r.provider.stats.logins == 2)
        assert r.sink.states == [ConnectionState.CONNECTED]  # renewed between two polls
        assert r.provider.stats.refreshes == 1


async def test_a_refused_password_is_auth_failed_and_run_returns() -> None:
    async with running(password="wrong") as r:
        with anyio.fail_after(WAIT_S):
            await r.done.wait()
        assert r.sink.states == [ConnectionState.AUTH_FAILED]
        assert "refused" in r.sink.statuses[0][1]


async def test_an_access_token_alone_works_until_it_expires() -> None:
    async with nest_web.serve(SimHome.demo(), email=EMAIL, password=PASSWORD, hold_s=0.2) as sim:
        token = sim.login()
        options = {"access_token": token, "backoff_initial_s": 0.05, "subscribe_timeout_s": 2.0}
        async with make(NestWebProvider, "nest_web", api_url=sim.url, **options) as web:
            sink = RecordingSink()
            with anyio.fail_after(WAIT_S):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(web.run, sink)
                    await sink.wait_for(lambda: bool(sink.snapshots))
                    assert (web.stats.resumes, web.stats.logins) == (1, 0)
                    sim.expire_sessions()
                    await sink.wait_for(lambda: ConnectionState.AUTH_FAILED in sink.states)
            assert "access token was refused" in sink.statuses[-1][1]


async def test_a_stored_session_token_is_resumed_instead_of_logging_in() -> None:
    async with nest_web.serve(SimHome.demo(), email=EMAIL, password=PASSWORD, hold_s=0.2) as sim:
        tokens = MemoryTokenStore()
        await tokens.save("acct", TokenSet(sim.login()))
        options = {"email": EMAIL, "password": PASSWORD, "tokens": tokens}
        async with make(NestWebProvider, "nest_web", api_url=sim.url, **options) as web:
            sink = RecordingSink()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(web.run, sink)
                await sink.wait_for(lambda: bool(sink.snapshots))
                tasks.cancel_scope.cancel()
            assert (web.stats.resumes, web.stats.logins) == (1, 0)
            assert sim.count("/session") == 1  # the GET that resumed it


async def test_server_errors_back_off_and_resync() -> None:
    async with running() as r:
        await connected(r)
        r.sim.fail_next("read", 2, 503)
        r.sim.home.set_ambient(LIVING, 25.0)
        await r.sink.wait_for(lambda: r.sink.device(LIVING).ambient_c == 25.0)
        assert ConnectionState.DISCONNECTED in r.sink.states
        assert r.sink.states[-1] is ConnectionState.CONNECTED
        assert "503" in r.sink.statuses[1][1]


async def test_replies_that_keep_repeating_held_revisions_lead_to_a_resync() -> None:
    async with running() as r:
        await connected(r)
        r.sim.answer_stale(3)
        await r.sink.wait_for(lambda: r.provider.stats.refreshes == 2)
        assert "revisions already held" in r.sink.statuses[1][1]
        assert r.sink.states[-1] is ConnectionState.CONNECTED


async def test_a_new_device_in_the_swarm_triggers_a_full_refresh() -> None:
    async with running() as r:
        await connected(r)
        r.sim.home.add(
            SimSmokeCoAlarm(id="alarm-attic", name="Attic", structure_id=HOME_ID, room="Attic")
        )
        await r.sink.wait_for(lambda: "alarm-attic" in r.sink.latest.devices)
        assert r.provider.stats.refreshes == 2
        assert r.sink.latest.devices["alarm-attic"].room == "Attic"


async def test_schedules_are_read_and_followed() -> None:
    async with running() as r:
        await connected(r)
        first = r.provider.schedules[LIVING][0]
        assert (first.mode, first.time_s, first.heat_c) == (ThermostatMode.HEAT, 23400, 20.0)
        days = {"0": {"0": {"type": "HEAT", "temp": 17.5, "time": 3600, "entry_type": "setpoint"}}}
        async with httpx.AsyncClient() as app:  # the web app changes the bedroom's schedule
            response = await app.post(
                f"{r.sim.transport_url}/v1/put/schedule.{BEDROOM}",
                json={"days": days},
                headers={"Authorization": f"Basic {r.sim.login()}"},
            )
        assert response.status_code == 200
        await eventually(lambda: len(r.provider.schedules[BEDROOM]) == 1)
        assert r.provider.schedules[BEDROOM][0].heat_c == 17.5


# --- writes ---------------------------------------------------------------------------------


async def test_commands_land_as_puts_and_come_back_as_changes() -> None:
    async with running() as r:
        await connected(r)
        assert (await r.provider.execute(command(LIVING, SetEco(True)))).ok
        assert r.sim.writes[-1] == (f"device.{LIVING}", {"eco": {"mode": "manual-eco"}})
        await r.sink.wait_for(lambda: r.sink.device(LIVING).mode is ThermostatMode.ECO)
        assert (await r.provider.execute(command(LIVING, SetEco(False)))).ok
        await r.sink.wait_for(lambda: r.sink.device(LIVING).mode is ThermostatMode.HEAT)
        assert (await r.provider.execute(command(LIVING, SetHeat(21.5)))).ok
        await r.sink.wait_for(lambda: r.sink.device(LIVING).heat_setpoint_c == 21.5)
        assert (await r.provider.execute(command(LIVING, SetFanTimer(30)))).ok
        await r.sink.wait_for(lambda: r.sink.device(LIVING).fan_timer_active)
        assert (await r.provider.execute(command(LIVING, SetMode(ThermostatMode.COOL)))).ok
        await r.sink.wait_for(lambda: r.sink.device(LIVING).mode is ThermostatMode.COOL)
        away = command(HOME_ID, SetPresence(Presence.AWAY))
        assert (await r.provider.execute(away)).ok
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)


async def test_a_put_with_an_expired_session_logs_in_again_and_retries_once() -> None:
    async with running() as r:
        await connected(r)
        r.sim.expire_sessions()
        assert (await r.provider.execute(command(LIVING, SetHeat(22)))).ok
        assert r.sim.home.thermostat(LIVING).target_c == 22
        assert r.provider.stats.logins == 2


@pytest.mark.parametrize(
    ("target", "action", "reason"),
    [
        (BEDROOM, SetMode(ThermostatMode.COOL), FailureReason.INVALID),  # cannot cool: encoder
        (LIVING, SetHeat(40), FailureReason.INVALID),  # the service refuses
        ("nope", SetHeat(20), FailureReason.NOT_FOUND),
    ],
)
async def test_refused_commands_are_typed_failures(
    target: str, action: Action, reason: FailureReason
) -> None:
    async with running() as r:
        await connected(r)
        result = await r.provider.execute(command(target, action))
        assert (result.ok, result.reason) == (False, reason)


async def test_a_rate_limited_put_says_so() -> None:
    async with running() as r:
        await connected(r)
        r.sim.fail_next("write", 1, 429)
        result = await r.provider.execute(command(LIVING, SetHeat(21)))
        assert (result.ok, result.reason) == (False, FailureReason.RATE_LIMITED)


# --- settings -------------------------------------------------------------------------------


def test_the_registry_builds_the_provider_from_its_settings() -> None:
    account = validated(
        NestWebAccount,
        name="acct",
        provider="nest_web",
        email=EMAIL,
        password=PASSWORD,
        subscribe_timeout_s=30,
    )
    provider = build_provider(account, ProviderContext())
    assert isinstance(provider, NestWebProvider)
    assert PASSWORD not in repr(provider)
    assert write_limits(provider) == WRITE_LIMITS  # gentle, declared for the dispatcher
    assert account.api_url == "https://home.nest.com"


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"email": EMAIL},
        {"password": PASSWORD},
        {"email": EMAIL, "password": PASSWORD, "access_token": "b.1.x"},
        {"email": EMAIL, "password": PASSWORD, "password_credential": "nest"},
    ],
)
def test_settings_need_email_and_password_or_a_token(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="account 'acct'"):
        NestWebAccount(name="acct", provider="nest_web", **settings)


def test_a_password_can_come_from_a_credential_file(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "nest").write_text("from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    account = NestWebAccount(
        name="acct", provider="nest_web", email=EMAIL, password_credential="nest"
    )
    assert account.password is not None
    assert account.password.get_secret_value() == "from-file"


@pytest.mark.anyio
async def test_immediate_empty_replies_are_paced_not_polled_in_a_tight_loop() -> None:
    """A server whose long poll answers at once with nothing (hold 0) once made roost
    subscribe ~1,200 times a second; now the subscribes back off (0.1 s, then 1, 2, 4 s…)."""
    async with nest_web.serve(SimHome.demo(), email=EMAIL, password=PASSWORD, hold_s=0) as sim:
        options: dict[str, Any] = {"email": EMAIL, "password": PASSWORD}
        async with make(NestWebProvider, "nest_web", api_url=sim.url, **options) as web:
            sink = RecordingSink()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(web.run, sink)
                await sink.wait_for(lambda: bool(sink.snapshots))
                await anyio.sleep(3)
                tasks.cancel_scope.cancel()
    assert 2 <= web.stats.subscribes <= 8


@pytest.mark.anyio
async def test_changes_under_updated_buckets_are_applied() -> None:
    """Some subscribe replies carry their changes as `updated_buckets` instead of `objects`;
    a CO emergency inside one must not be lost."""
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.reply_field = "updated_buckets"
        r.sim.home.set_co(ALARM, "emergency")
        await r.sink.wait_for(lambda: r.sink.device(ALARM).co is AlarmState.EMERGENCY)
