"""The Google SDM provider against the SDM simulator, over HTTP on 127.0.0.1.

Nothing of roost is mocked: the provider refreshes its token at the simulator's OAuth
endpoint, lists and commands over SDM REST and long-polls the simulated Pub/Sub
subscription; it reports into a small recording `ChangeSink` (a test double of the
interface). Ack deadlines, long polls and event threads are short; every wait is bounded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from roost.core.clock import SystemClock
from roost.core.commands import (
    Action,
    Command,
    CommandResult,
    FailureReason,
    SetCool,
    SetEco,
    SetFanTimer,
    SetHeat,
    SetMode,
    SetPresence,
    SetRange,
)
from roost.core.events import Chime, ConnectionState, Motion, Person
from roost.core.model import Camera, Doorbell, Thermostat, ThermostatMode
from roost.providers.base import MemoryProviderMemory, MemoryTokenStore, TokenSet
from roost.providers.sdm.provider import SdmProvider
from roost.simulator import sdm
from roost.simulator.home import SimCamera, SimHome
from tests.provider_kit import make
from tests.recording import RecordingSink

pytestmark = pytest.mark.anyio

LOUNGE = "thermostat-lounge"
STUDY = "thermostat-study"
DOORBELL = "doorbell-front"
GARDEN = "camera-garden"
VILLA = "structure-villa"
WAIT_S = 5.0


@dataclass
class Rig:
    home: SimHome
    sim: sdm.SdmSimulator
    provider: SdmProvider
    sink: RecordingSink

    async def execute(self, target: str, action: Action) -> CommandResult:
        now = datetime.now(UTC)
        command = Command("c-test", "acct", target, action, now, now + timedelta(minutes=5))
        return await self.provider.execute(command)

    async def idle(self) -> None:
        """Wait until the subscription has nothing left unacknowledged."""
        with anyio.fail_after(WAIT_S):
            while self.sim.subscription.backlog:
                await anyio.sleep(0.01)


def make_provider(sim: sdm.SdmSimulator, **overrides: Any) -> SdmProvider:
    options: dict[str, Any] = {
        "project_id": sim.names.project_id,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "refresh_token": sim.refresh_token,
        "subscription": sim.subscription.name,
        "api_url": sim.api_url,
        "token_url": sim.token_url,
        "pubsub_url": sim.pubsub_url,
        "pull_timeout_s": 5.0,
        "token_margin_s": 0.1,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
    }
    options.update(overrides)
    return make(SdmProvider, "sdm", **options)


@asynccontextmanager
async def rig(
    home: SimHome | None = None,
    *,
    start: bool = True,
    provider_options: dict[str, Any] | None = None,
    **sim_options: Any,
) -> AsyncIterator[Rig]:
    home = home or sdm.demo_home()
    options: dict[str, Any] = {"ack_deadline_s": 0.5, "pull_wait_s": 0.3, "thread_end_s": 0.2}
    options.update(sim_options)
    async with (
        sdm.serve(home, **options) as sim,
        make_provider(sim, **(provider_options or {})) as provider,
    ):
        sink = RecordingSink()
        async with anyio.create_task_group() as tg:
            if start:
                tg.start_soon(provider.run, sink)
                await sink.wait_for(lambda: bool(sink.snapshots))
            yield Rig(home, sim, provider, sink)
            tg.cancel_scope.cancel()


# -- the picture ---------------------------------------------------------------------------


async def test_the_first_list_is_a_full_normalized_snapshot() -> None:
    async with rig() as r:
        home = r.sink.snapshots[0]
        assert r.sink.statuses[0][0] is ConnectionState.CONNECTED
        assert set(home.structures) == {VILLA}
        assert home.structures[VILLA].name == "Villa"
        lounge = home.devices[LOUNGE]
        assert isinstance(lounge, Thermostat)
        assert (lounge.name, lounge.room, lounge.structure_id) == ("Lounge", "Lounge", VILLA)
        assert lounge.mode is ThermostatMode.COOL
        assert (lounge.heat_setpoint_c, lounge.cool_setpoint_c) == (None, 27.0)
        assert lounge.ambient_c == 25.0
        assert lounge.can_cool
        assert lounge.has_fan
        assert lounge.eco_range_c == (12.5, 28.0)
        study = home.devices[STUDY]
        assert isinstance(study, Thermostat)
        assert not study.can_cool
        assert not study.has_fan
        assert type(home.devices[DOORBELL]) is Doorbell
        assert type(home.devices[GARDEN]) is Camera
        assert r.home.alarms == {}  # SDM has no smoke/CO alarms at all


async def test_a_trait_change_becomes_a_patch() -> None:
    async with rig() as r:
        r.home.set_ambient(LOUNGE, 28.0)
        await r.sink.wait_for(lambda: 28.0 in r.sink.changes(LOUNGE, "ambient_c"))
        assert "cooling" in r.sink.changes(LOUNGE, "hvac")
        assert r.provider.home is not None
        lounge = r.provider.home.devices[LOUNGE]
        assert isinstance(lounge, Thermostat)
        assert lounge.ambient_c == 28.0


async def test_offline_is_reported_from_the_connectivity_trait() -> None:
    async with rig() as r:
        r.home.set_online(STUDY, False)
        await r.sink.wait_for(lambda: False in r.sink.changes(STUDY, "online"))


# -- ordering and delivery -------------------------------------------------------------------


async def test_a_batch_is_applied_in_timestamp_order() -> None:
    async with rig() as r:
        r.sim.subscription.hold()
        for celsius in (26.0, 27.0, 28.0):
            r.home.set_ambient(LOUNGE, celsius)
            await anyio.sleep(0.01)  # distinct timestamps
        r.sim.subscription.release(reverse=True)
        await r.idle()
        assert r.sink.changes(LOUNGE, "ambient_c") == [26.0, 27.0, 28.0]


async def test_out_of_order_messages_never_roll_state_back() -> None:
    async with rig(provider_options={"max_messages": 1}) as r:
        r.sim.subscription.hold()
        for celsius in (26.0, 27.0, 28.0):
            r.home.set_ambient(LOUNGE, celsius)
            await anyio.sleep(0.01)  # distinct timestamps
        assert r.sim.subscription.release(reverse=True) == 3
        await r.idle()
        assert r.sink.changes(LOUNGE, "ambient_c") == [28.0]
        assert r.provider.stats.stale_values > 0
        assert r.provider.home is not None
        lounge = r.provider.home.devices[LOUNGE]
        assert isinstance(lounge, Thermostat)
        assert lounge.ambient_c == 28.0


async def test_a_stale_update_for_one_field_does_not_hide_a_newer_one_for_another() -> None:
    async with rig() as r:
        name = r.sim.names.device(LOUNGE)
        now = datetime.now(UTC)
        trait = "sdm.devices.traits.ThermostatTemperatureSetpoint"

        def update(event_id: str, at: datetime, values: dict[str, float]) -> dict[str, Any]:
            return {
                "eventId": event_id,
                "timestamp": at.isoformat().replace("+00:00", "Z"),
                "resourceUpdate": {"name": name, "traits": {trait: values}},
                "userId": sdm.USER_ID,
            }

        r.sim.publish_event(update("later", now + timedelta(seconds=2), {"coolCelsius": 25.0}))
        await r.idle()
        r.sim.publish_event(update("earlier", now + timedelta(seconds=1), {"coolCelsius": 26.0}))
        r.sim.publish_event(update("old", now - timedelta(hours=1), {"coolCelsius": 20.0}))
        await r.idle()
        assert r.sink.changes(LOUNGE, "cool_setpoint_c") == [25.0]
        assert r.provider.stats.stale_values == 2


async def test_duplicate_deliveries_fire_once() -> None:
    async with rig() as r:
        r.sim.subscription.duplicate_deliveries = True
        r.home.doorbell_chime(DOORBELL)
        r.home.set_ambient(LOUNGE, 26.5)
        await r.sink.wait_for(lambda: bool(r.sink.events(Chime)))
        await anyio.sleep(0.4)  # the thread's ENDED message, also twice
        await r.idle()
        assert len(r.sink.events(Chime)) == 1
        assert r.sink.changes(LOUNGE, "ambient_c") == [26.5]
        assert r.provider.stats.duplicates >= 2


async def test_an_unacknowledged_message_is_redelivered_and_not_reported_again() -> None:
    async with rig() as r:
        r.sim.subscription.fail_next_acks(1)
        r.home.doorbell_chime(DOORBELL)
        await r.sink.wait_for(lambda: bool(r.sink.events(Chime)))
        await r.idle()  # redelivered after the 0.5 s ack deadline, then acknowledged
        assert r.sim.subscription.stats.redeliveries >= 1
        assert r.provider.stats.ack_failures == 1
        assert len(r.sink.events(Chime)) == 1


async def test_an_event_thread_reports_each_event_once() -> None:
    async with rig() as r:
        r.home.camera_event(GARDEN, motion=True)
        await r.sink.wait_for(lambda: bool(r.sink.events(Motion)))
        r.home.extend_camera_event(GARDEN, person=True)  # UPDATED: motion again, and a person
        await r.sink.wait_for(lambda: bool(r.sink.events(Person)))
        await anyio.sleep(0.4)  # ENDED, with both again
        await r.idle()
        states = [p.get("eventThreadState") for p in r.sim.published if "eventThreadId" in p]
        assert states == ["STARTED", "UPDATED", "ENDED"]
        assert [type(e) for e in r.sink.device_events] == [Motion, Person]
        motion = r.sink.device_events[0]
        assert (motion.device, motion.structure) == (GARDEN, VILLA)
        assert motion.context.catch_up is False
        assert r.provider.stats.repeated_device_events == 3


async def test_remembered_ids_survive_a_restart() -> None:
    memory = MemoryProviderMemory()
    home = sdm.demo_home()
    async with sdm.serve(home, ack_deadline_s=0.5, pull_wait_s=0.3, thread_end_s=5) as sim:
        chime = None
        for _ in range(2):
            sink = RecordingSink()
            async with (
                make_provider(sim, memory=memory) as provider,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(provider.run, sink)
                await sink.wait_for(lambda s=sink: bool(s.snapshots))  # type: ignore[misc]
                if chime is None:
                    home.doorbell_chime(DOORBELL)
                    await sink.wait_for(lambda s=sink: bool(s.events(Chime)))  # type: ignore[misc]
                    chime = sim.published[-1]
                else:  # the same message again (as a redelivery after a crash would be)
                    sim.publish_event(chime)
                    with anyio.fail_after(WAIT_S):
                        while sim.subscription.backlog or not provider.stats.duplicates:
                            await anyio.sleep(0.01)
                    assert sink.events(Chime) == []
                tg.cancel_scope.cancel()


async def test_a_malformed_message_is_counted_and_acknowledged() -> None:
    async with rig() as r:
        r.sim.subscription.publish(b"data1")  # the openHAB fixture's placeholder data
        r.sim.subscription.publish(b'{"eventId": "x", "timestamp": "not a time"}')
        await r.idle()
        assert r.provider.stats.malformed == 2
        assert r.sink.patches == []
        assert r.sink.device_events == []


async def test_device_events_published_before_the_list_are_catch_up() -> None:
    async with rig(start=False) as r:
        r.sim._start_events()  # the subscription already exists from an earlier run
        r.home.doorbell_chime(DOORBELL)
        await anyio.sleep(1.1)  # so the list is a whole second later (Date is to the second)
        async with anyio.create_task_group() as tg:
            tg.start_soon(r.provider.run, r.sink)
            await r.sink.wait_for(lambda: bool(r.sink.events(Chime)))
            tg.cancel_scope.cancel()
        assert r.sink.events(Chime)[0].context.catch_up is True


# -- relations -----------------------------------------------------------------------------------


async def test_relation_updates_add_move_and_remove_devices() -> None:
    async with rig() as r:
        r.home.add(SimCamera(id="camera-garage", name="Garage", room="Garage", structure_id=VILLA))
        await r.sink.wait_for(lambda: "camera-garage" in r.sink.snapshots[-1].devices)
        r.home.move("camera-garage", room="Shed")
        await r.sink.wait_for(lambda: r.sink.snapshots[-1].devices["camera-garage"].room == "Shed")
        r.home.remove("camera-garage")
        await r.sink.wait_for(lambda: "camera-garage" not in r.sink.snapshots[-1].devices)
        assert r.provider.stats.relations == 3


async def test_an_update_for_an_unknown_device_reads_it_first() -> None:
    async with rig(provider_options={"max_messages": 1}) as r:
        r.sim.subscription.hold()
        r.home.add(SimCamera(id="camera-porch", name="Porch", room="Porch", structure_id=VILLA))
        await anyio.sleep(0.05)
        r.home.camera_event("camera-porch", motion=True)
        r.sim.subscription.release(reverse=True)  # the motion overtakes the CREATED
        await r.sink.wait_for(lambda: bool(r.sink.events(Motion)))
        await r.idle()
        assert r.provider.stats.relations == 1
        assert "camera-porch" in r.sink.snapshots[-1].devices
        assert r.sink.events(Motion)[0].structure == VILLA


# -- commands --------------------------------------------------------------------------------


async def test_a_command_is_executed_and_echoed() -> None:
    async with rig() as r:
        assert await r.execute(LOUNGE, SetCool(24.0)) == CommandResult.success()
        assert r.sim.commands[-1].command.endswith("ThermostatTemperatureSetpoint.SetCool")
        assert r.sim.commands[-1].params == {"coolCelsius": 24.0}
        await r.sink.wait_for(lambda: 24.0 in r.sink.changes(LOUNGE, "cool_setpoint_c"))


async def test_eco_and_mode_commands_map_to_their_traits() -> None:
    async with rig() as r:
        assert (await r.execute(LOUNGE, SetEco(True))).ok
        await r.sink.wait_for(lambda: ThermostatMode.ECO in r.sink.changes(LOUNGE, "mode"))
        assert (await r.execute(LOUNGE, SetEco(False))).ok
        await r.sink.wait_for(lambda: ThermostatMode.COOL in r.sink.changes(LOUNGE, "mode"))
        assert (await r.execute(LOUNGE, SetMode(ThermostatMode.HEAT_COOL))).ok
        await r.sink.wait_for(lambda: ThermostatMode.HEAT_COOL in r.sink.changes(LOUNGE, "mode"))
        sent = [(c.command.removeprefix("sdm.devices.commands."), c.params) for c in r.sim.commands]
        assert sent == [
            ("ThermostatEco.SetMode", {"mode": "MANUAL_ECO"}),
            ("ThermostatEco.SetMode", {"mode": "OFF"}),
            ("ThermostatMode.SetMode", {"mode": "HEATCOOL"}),
        ]


async def test_a_heat_change_in_heat_cool_is_a_range_that_keeps_the_cool_setpoint() -> None:
    async with rig() as r:
        assert (await r.execute(LOUNGE, SetMode(ThermostatMode.HEAT_COOL))).ok
        await r.sink.wait_for(lambda: ThermostatMode.HEAT_COOL in r.sink.changes(LOUNGE, "mode"))
        assert (await r.execute(LOUNGE, SetHeat(20.0))).ok
        assert r.sim.commands[-1].params == {"heatCelsius": 20.0, "coolCelsius": 24.0}
        assert (await r.execute(LOUNGE, SetRange(19.0, 25.0))).ok
        await r.sink.wait_for(lambda: 25.0 in r.sink.changes(LOUNGE, "cool_setpoint_c"))


async def test_a_setpoint_in_eco_is_refused_by_sdm_as_a_failed_precondition() -> None:
    async with rig() as r:
        assert (await r.execute(LOUNGE, SetEco(True))).ok
        await r.sink.wait_for(lambda: ThermostatMode.ECO in r.sink.changes(LOUNGE, "mode"))
        result = await r.execute(LOUNGE, SetCool(24.0))
        assert result.reason is FailureReason.INVALID
        assert not result.reason.retryable
        assert "FAILED_PRECONDITION" in result.detail
        assert "MANUAL_ECO" in result.detail
        assert r.sim.commands[-1].rpc_status == "FAILED_PRECONDITION"


async def test_what_cannot_apply_is_refused_without_a_request() -> None:
    async with rig() as r:
        refusals = [
            await r.execute(STUDY, SetMode(ThermostatMode.COOL)),  # not in availableModes
            await r.execute(STUDY, SetFanTimer(15)),  # no Fan trait
            await r.execute(STUDY, SetCool(24.0)),  # SetCool in HEAT
            await r.execute(DOORBELL, SetHeat(20.0)),  # not a thermostat
            await r.execute(VILLA, SetPresence("away")),  # type: ignore[arg-type]
        ]
        assert [f.reason for f in refusals] == [FailureReason.INVALID] * 5
        assert "presence" in refusals[-1].detail
        assert r.sim.commands == []
        missing = await r.execute("nope", SetHeat(20.0))
        assert missing.reason is FailureReason.NOT_FOUND


async def test_the_fan_timer_is_sent_in_seconds() -> None:
    async with rig() as r:
        assert (await r.execute(LOUNGE, SetFanTimer(30))).ok
        assert r.sim.commands[-1].params == {"timerMode": "ON", "duration": "1800s"}
        await r.sink.wait_for(lambda: True in r.sink.changes(LOUNGE, "fan_timer_active"))
        assert (await r.execute(LOUNGE, SetFanTimer(0))).ok
        assert r.sim.commands[-1].params == {"timerMode": "OFF"}


async def test_an_offline_device_fails_as_offline() -> None:
    async with rig() as r:
        r.home.set_online(STUDY, False)
        await r.sink.wait_for(lambda: False in r.sink.changes(STUDY, "online"))
        result = await r.execute(STUDY, SetHeat(19.0))
        assert result.reason is FailureReason.OFFLINE
        assert "Device is offline." in result.detail


async def test_the_per_device_command_quota_is_a_retryable_rate_limit() -> None:
    async with rig() as r:
        results = [await r.execute(STUDY, SetHeat(18.0 + i / 10)) for i in range(6)]
        assert all(result.ok for result in results[:5])
        limited = results[5]
        assert limited.reason is FailureReason.RATE_LIMITED
        assert limited.reason.retryable
        # No Retry-After from Google: the wait is until the window of the first SetHeat ends.
        assert limited.retry_after_s is not None
        assert 55.0 < limited.retry_after_s <= 60.0
        assert r.provider.write_limits.per_device is not None  # the dispatcher paces SDM
        assert "RESOURCE_EXHAUSTED" in limited.detail
        assert (await r.execute(STUDY, SetEco(True))).ok  # another command: its own quota


# -- auth and connection -----------------------------------------------------------------------


async def test_tokens_are_refreshed_before_expiry_and_kept_in_the_store() -> None:
    store = MemoryTokenStore()
    async with sdm.serve(sdm.demo_home(), token_lifetime_s=1.0, pull_wait_s=0.2) as sim:
        sink = RecordingSink()
        async with make_provider(sim, tokens=store) as provider, anyio.create_task_group() as tg:
            tg.start_soon(provider.run, sink)
            await sink.wait_for(lambda: bool(sink.snapshots))
            await anyio.sleep(2.5)  # outlive two access tokens while long-polling
            assert provider.auth.refreshes >= 2
            stored = await store.load("acct")
            assert stored is not None
            assert stored.refresh_token == sim.refresh_token
            assert "sdm.service" in stored.scope
            sim.home.set_ambient(LOUNGE, 26.0)
            await sink.wait_for(lambda: 26.0 in _changes(sink, LOUNGE, "ambient_c"))
            assert [s for s, _ in sink.statuses] == [ConnectionState.CONNECTED]
            tg.cancel_scope.cancel()


async def test_a_token_revoked_early_is_replaced_after_one_401() -> None:
    async with rig() as r:
        r.sim.expire_access_tokens()
        refreshes = r.provider.auth.refreshes
        assert (await r.execute(LOUNGE, SetCool(25.0))).ok
        assert r.provider.auth.refreshes == refreshes + 1


async def test_a_refused_stored_refresh_token_falls_back_to_the_configured_one() -> None:
    store = MemoryTokenStore()
    await store.save("acct", TokenSet("old-access", "1//an-old-revoked-one"))
    async with sdm.serve(sdm.demo_home(), pull_wait_s=0.2) as sim:
        sink = RecordingSink()
        async with make_provider(sim, tokens=store) as provider, anyio.create_task_group() as tg:
            tg.start_soon(provider.run, sink)
            await sink.wait_for(lambda: bool(sink.snapshots))
            stored = await store.load("acct")
            assert stored is not None
            assert stored.refresh_token == sim.refresh_token
            tg.cancel_scope.cancel()


async def test_a_revoked_grant_ends_the_run_as_auth_failed() -> None:
    async with rig() as r:
        r.sim.revoke()
        with anyio.fail_after(WAIT_S):
            while r.provider.state is not ConnectionState.AUTH_FAILED:
                await anyio.sleep(0.01)
        assert "authorize roost again" in r.sink.statuses[-1][1]
        result = await r.execute(LOUNGE, SetCool(25.0))
        assert result.reason is FailureReason.UNAUTHORIZED


async def test_a_failed_pull_resyncs_and_catches_up() -> None:
    async with rig() as r:
        lists = r.sim.list_calls
        r.sim.fail_next("read", 2, 503)
        r.home.set_ambient(STUDY, 17.0)
        await r.sink.wait_for(lambda: r.sim.list_calls > lists + 1 or 17.0 in _all(r.sink, STUDY))
        await r.sink.wait_for(lambda: r.provider.state is ConnectionState.CONNECTED)
        states = [s for s, _ in r.sink.statuses]
        assert ConnectionState.DISCONNECTED in states
        assert "UNAVAILABLE" in dict(r.sink.statuses)[ConnectionState.DISCONNECTED]
        await r.sink.wait_for(lambda: 17.0 in _all(r.sink, STUDY))


def _changes(sink: RecordingSink, target: str, attribute: str) -> list[Any]:
    return sink.changes(target, attribute)


def _all(sink: RecordingSink, target: str) -> list[Any]:
    """Ambient readings of a thermostat, from patches and snapshots alike."""
    found = list(sink.changes(target, "ambient_c"))
    for home in sink.snapshots:
        device = home.devices.get(target)
        if isinstance(device, Thermostat):
            found.append(device.ambient_c)
    return found


async def test_a_denied_pull_is_auth_failed_with_the_reason_and_no_retry_storm() -> None:
    """Pub/Sub answers 403 PERMISSION_DENIED when the user lacks subscriber rights on the
    subscription: retrying cannot help, so the account is auth_failed and run returns."""
    async with rig() as r:
        lists = r.sim.list_calls
        r.sim.subscription.faults.fail_next("read", 100, 403)
        with anyio.fail_after(WAIT_S):
            while r.provider.state is not ConnectionState.AUTH_FAILED:
                await anyio.sleep(0.01)
        assert "Pub/Sub Subscriber" in r.sink.statuses[-1][1]
        await anyio.sleep(0.5)
        assert r.sim.list_calls - lists <= 1  # no re-list per retry


async def test_a_transient_off_only_update_is_refused_and_the_device_re_read() -> None:
    """SDM sometimes sends availableModes ["OFF"]; applying it would show a false "off"
    until the next reconnect. Like google-nest-sdm, roost re-reads the device instead."""
    async with rig() as r:
        name = r.sim.names.device(LOUNGE)
        r.sim.publish_event(
            {
                "eventId": "glitch-1",
                "timestamp": "2099-01-01T00:00:00Z",
                "resourceUpdate": {
                    "name": name,
                    "traits": {
                        "sdm.devices.traits.ThermostatMode": {
                            "mode": "OFF",
                            "availableModes": ["OFF"],
                        }
                    },
                },
                "userId": "sim-user",
            }
        )
        await r.sink.wait_for(lambda: r.provider.stats.glitches == 1)
        await r.idle()
        assert r.sink.snapshots[-1].devices[LOUNGE].mode is not ThermostatMode.OFF
        assert ThermostatMode.OFF not in _changes(r.sink, LOUNGE, "mode")


async def test_a_deleted_room_relation_keeps_the_device() -> None:
    """A DELETED relation whose subject is a room means the device left the room, not the
    home: devices.get (not 404) keeps it, with no device_removed/device_added."""
    async with rig() as r:
        name = r.sim.names.device(LOUNGE)
        room = r.sim.names.room(VILLA, "Lounge")
        snapshots = len(r.sink.snapshots)
        r.sim._relation("DELETED", room, name)
        await r.sink.wait_for(lambda: r.provider.stats.relations == 1)
        await r.idle()
        assert all(LOUNGE in home.devices for home in r.sink.snapshots[snapshots:])


async def test_devices_are_re_listed_every_12_hours_while_healthy() -> None:
    """A missed or wrong update cannot stick: like google-nest-sdm, the provider re-lists
    the devices every 12 h even while the pull loop is healthy."""

    class Later(SystemClock):
        """Real time, twelve hours on once `jump` is set."""

        jump = 0.0

        def monotonic(self) -> float:
            return super().monotonic() + self.jump

    clock = Later()
    async with rig(provider_options={"clock": clock}) as r:
        lists = r.sim.list_calls
        await anyio.sleep(0.5)
        assert r.sim.list_calls == lists  # healthy: no re-list
        clock.jump = 12 * 3600.0
        await r.sink.wait_for(lambda: r.sim.list_calls > lists)
