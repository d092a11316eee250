"""The Works with Nest provider against the WWN simulator, over HTTP/SSE on 127.0.0.1.

Nothing of roost is mocked: the provider talks to `roost.simulator.nest_wwn` through a real
socket, and reports into a small recording `ChangeSink` (a test double of the interface).
Timings are short (keep-alive 0.1 s, watchdog 0.5 s) and every wait is bounded.
"""

from __future__ import annotations

import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from roost.core.commands import (
    Action,
    Command,
    CommandResult,
    FailureReason,
    SetEco,
    SetHeat,
    SetMode,
    SetPresence,
)
from roost.core.events import ConnectionState, Motion, Person
from roost.core.model import (
    AlarmState,
    Camera,
    Change,
    Doorbell,
    Home,
    Presence,
    SmokeCoAlarm,
    Thermostat,
    ThermostatMode,
)
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.providers.sse import SseEvent
from roost.simulator import http, nest_wwn
from roost.simulator.home import SimHome
from tests.provider_kit import make
from tests.recording import RecordingSink

TOKEN = "c.test-token"
HOME_ID = "structure-home"
LIVING = "thermostat-living-room"
ALARM = "alarm-hallway"
DOORBELL = "camera-front-door"
WATCHDOG_S = 0.5
WAIT_S = 5.0


@dataclass
class Running:
    sim: nest_wwn.NestWwnSimulator
    provider: NestWwnProvider
    sink: RecordingSink
    done: anyio.Event


@asynccontextmanager
async def running(*, token: str = TOKEN, **provider: Any) -> AsyncIterator[Running]:
    """The demo home served by the simulator, with a provider streaming from it."""
    async with nest_wwn.serve(SimHome.demo(), token=TOKEN, keepalive_s=0.1) as sim:
        options: dict[str, Any] = {
            "keepalive_timeout_s": WATCHDOG_S,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
        } | provider
        async with make(
            NestWwnProvider, "nest_wwn", api_url=sim.url, token=token, **options
        ) as wwn:
            sink = RecordingSink()
            done = anyio.Event()

            async def run() -> None:
                await wwn.run(sink)
                done.set()

            failure: Exception | None = None
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run)
                try:
                    yield Running(sim, wwn, sink, done)
                except Exception as error:  # re-raised below, not wrapped in a group
                    failure = error
                tasks.cancel_scope.cancel()
            if failure is not None:
                raise failure


def command(target: str, action: Action) -> Command:
    now = datetime.now(UTC)
    return Command("cmd-1", "acct", target, action, now, now + timedelta(seconds=30))


def thermostat(home: Home, device_id: str = LIVING) -> Thermostat:
    device = home.devices[device_id]
    assert isinstance(device, Thermostat)
    return device


def alarm(home: Home) -> SmokeCoAlarm:
    device = home.devices[ALARM]
    assert isinstance(device, SmokeCoAlarm)
    return device


@pytest.mark.anyio
async def test_first_snapshot() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        home = r.sink.latest
        assert r.sink.states == [ConnectionState.CONNECTED]
        assert home.structures[HOME_ID].name == "Home"
        assert home.structures[HOME_ID].presence is Presence.HOME
        assert home.structures[HOME_ID].time_zone == "Europe/London"
        living = thermostat(home)
        assert (living.name, living.room, living.mode) == ("Living Room", "Living Room", "heat")
        assert (living.heat_setpoint_c, living.cool_setpoint_c) == (20.0, None)
        assert (living.can_cool, living.has_fan, living.online) == (True, True, True)
        hallway = alarm(home)
        assert (hallway.room, hallway.co, hallway.smoke) == ("Hallway", "ok", "ok")
        marked = r.sim.document()["devices"]["cameras"][DOORBELL].get("is_doorbell", False)
        assert type(home.devices[DOORBELL]) is (Doorbell if marked else Camera)
        assert r.provider.home == home
        assert r.provider.stats.malformed == 0


@pytest.mark.anyio
async def test_a_change_becomes_a_new_snapshot() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.home.set_away(HOME_ID, True)
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)
        r.sim.home.set_online(LIVING, False)
        await r.sink.wait_for(lambda: not r.sink.latest.devices[LIVING].online)
        assert r.sink.states == [ConnectionState.CONNECTED]  # still the same stream


@pytest.mark.anyio
async def test_a_put_that_changed_only_a_reading_becomes_a_patch() -> None:
    """The same events as a snapshot would make, without a diff of the whole home; the
    provider's own picture (what its writes read) has the new reading too."""
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        snapshots = len(r.sink.snapshots)
        r.sim.home.set_ambient(LIVING, 23.5)
        await r.sink.wait_for(lambda: bool(r.sink.patches))
        (patch,) = r.sink.patches  # the simulator's thermostat may start heating with it
        assert Change(LIVING, "ambient_c", 23.5) in patch
        assert {c.attribute for c in patch} <= {"ambient_c", "hvac"}
        assert len(r.sink.snapshots) == snapshots
        assert r.provider.home is not None
        assert thermostat(r.provider.home).ambient_c == 23.5
        r.sim.home.set_mode(LIVING, "cool")  # not a reading: the whole picture
        await r.sink.wait_for(lambda: len(r.sink.snapshots) > snapshots)
        assert thermostat(r.sink.latest).mode is ThermostatMode.COOL
        assert thermostat(r.sink.latest).ambient_c == 23.5


@pytest.mark.anyio
async def test_a_stream_waiting_for_its_next_event_holds_nothing_of_the_last_put() -> None:
    """With 10,000 streams the next put may be minutes away, and whatever a waiting stream
    still holds of its last one is walked by every young collection (bench/put_survivors.py):
    not the event, nor what parsing and normalizing it left over."""
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.home.set_ambient(LIVING, 23.5)
        await r.sink.wait_for(lambda: bool(r.sink.patches))
        await anyio.sleep(0.3)  # keep-alives come and go too
        assert [o for o in gc.get_objects() if type(o) is SseEvent] == []
        assert r.provider._parse.edits is None
        assert r.provider._parse.replaced == {}
        assert r.provider._normalize.readings is None


@pytest.mark.anyio
async def test_a_devices_unreadable_field_stays_noted_across_readings_of_others() -> None:
    """A put that changed only readings leaves the other devices' problems as they were
    (its review needs no list of the home's targets); once the device goes, they go too."""
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        health = r.sink.payload_health("acct")
        r.sim.serve_raw(f"devices/smoke_co_alarms/{ALARM}/battery_health", '"soggy"')
        await r.sink.wait_for(lambda: ALARM in health.present)
        patches = len(r.sink.patches)
        r.sim.home.set_ambient(LIVING, 24.5)
        await r.sink.wait_for(lambda: len(r.sink.patches) > patches)
        assert health.present[ALARM]["battery_health"].kind == "unknown value"
        r.sim.hide_protect(ALARM)
        await r.sink.wait_for(lambda: ALARM not in r.sink.latest.devices)
        assert ALARM not in health.present


@pytest.mark.anyio
async def test_camera_event_reported_once() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        event = r.sim.home.camera_event(DOORBELL, motion=True, person=True)
        await r.sink.wait_for(lambda: len(r.sink.device_events) == 2)
        assert [type(e) for e in r.sink.device_events] == [Motion, Person]
        assert {e.device for e in r.sink.device_events} == {DOORBELL}
        started = event.start.replace(microsecond=event.start.microsecond // 1000 * 1000)
        assert all(e.started_at == started for e in r.sink.device_events)
        r.sim.home.set_away(HOME_ID, True)  # a later put still carries the same last_event
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)
        assert len(r.sink.device_events) == 2


@pytest.mark.anyio
async def test_redirect_is_followed_and_its_host_cached_for_writes() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        result = await r.provider.execute(command(HOME_ID, SetPresence(Presence.AWAY)))
        assert result == CommandResult.success()
        # The stream's 307 taught the provider the stream host: the write goes straight there.
        assert [(q.path, q.status) for q in r.sim.requests] == [
            (f"{nest_wwn.STREAM_HOST_PREFIX}/structures/{HOME_ID}", 200)
        ]
        assert r.sim.writes == [(f"/structures/{HOME_ID}", {"away": "away"})]
        await r.sink.wait_for(lambda: r.sink.latest.structures[HOME_ID].presence is Presence.AWAY)


@pytest.mark.anyio
async def test_write_follows_a_307_after_the_cached_host_failed() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.fail_next("write", 1, 503)
        failed = await r.provider.execute(command(LIVING, SetHeat(21.0)))
        assert (failed.ok, failed.reason) == (False, FailureReason.SERVER_ERROR)
        result = await r.provider.execute(command(LIVING, SetHeat(21.5)))
        assert result.ok, result
        path = f"/devices/thermostats/{LIVING}"
        assert [(q.method, q.path, q.status) for q in r.sim.requests[1:]] == [
            ("PUT", path, 307),  # the failure dropped the cached host: start over
            ("PUT", nest_wwn.STREAM_HOST_PREFIX + path, 200),  # same verb and body at Location
        ]
        assert r.sim.writes == [(path, {"target_temperature_c": 21.5})]
        await r.sink.wait_for(lambda: thermostat(r.sink.latest).heat_setpoint_c == 21.5)


@pytest.mark.anyio
async def test_drop_reconnect_and_resync_loses_no_change() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.fail_next("read", 2, 503)  # keep the provider out for a while after the drop
        r.sim.drop_streams()
        await r.sink.wait_for(lambda: ConnectionState.DISCONNECTED in r.sink.states)
        r.sim.home.set_co(ALARM, "emergency")  # happens while roost is not watching
        await r.sink.wait_for(lambda: r.sink.states[-1] is ConnectionState.CONNECTED)
        await r.sink.wait_for(lambda: alarm(r.sink.latest).co is AlarmState.EMERGENCY)
        assert r.sink.states == [
            ConnectionState.CONNECTED,
            ConnectionState.DISCONNECTED,
            ConnectionState.CONNECTED,
        ]
        assert r.provider.supervisor.stats.disconnects >= 3  # the drop and the two refused openings


@pytest.mark.anyio
async def test_silent_stream_triggers_the_watchdog() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.silence_keepalives(True)
        started = anyio.current_time()
        await r.sink.wait_for(
            lambda: ConnectionState.DISCONNECTED in r.sink.states, limit_s=2 * WATCHDOG_S
        )
        assert anyio.current_time() - started >= WATCHDOG_S * 0.9
        assert r.provider.stats.watchdog_timeouts == 1
        assert "no event or keep-alive" in r.sink.statuses[-1][1]
        r.sim.silence_keepalives(False)
        snapshots = len(r.sink.snapshots)
        await r.sink.wait_for(
            lambda: len(r.sink.snapshots) > snapshots
        )  # resynced on the new stream
        await r.sink.wait_for(lambda: r.sink.states[-1] is ConnectionState.CONNECTED)


@pytest.mark.anyio
async def test_keepalives_hold_the_stream_open() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        await anyio.sleep(3 * WATCHDOG_S)
        assert r.sink.states == [ConnectionState.CONNECTED]
        assert r.provider.stats.watchdog_timeouts == 0


@pytest.mark.anyio
async def test_auth_revoked_stops_without_a_reconnect_storm() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.revoke_token()
        with anyio.fail_after(WAIT_S):
            await r.done.wait()  # run returned by itself
        assert r.sink.states == [ConnectionState.CONNECTED, ConnectionState.AUTH_FAILED]
        assert "auth_revoked" in r.sink.statuses[-1][1]
        connects = r.provider.stats.connects
        await anyio.sleep(0.3)
        assert r.provider.stats.connects == connects == 1


@pytest.mark.anyio
async def test_rejected_token_fails_auth_at_once() -> None:
    async with running(token="c.wrong") as r:
        with anyio.fail_after(WAIT_S):
            await r.done.wait()
        assert r.sink.states == [ConnectionState.AUTH_FAILED]
        assert "401" in r.sink.statuses[0][1]
        assert "c.wrong" not in r.sink.statuses[0][1]
        assert r.provider.stats.connects == 0
        assert "c.wrong" not in repr(r.provider)


@pytest.mark.anyio
async def test_rate_limited_stream_honours_retry_after() -> None:
    async with running() as r:
        r.sim.fail_next("read", 1, 429, headers={"Retry-After": "0.4"})
        started = anyio.current_time()
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        assert anyio.current_time() - started >= 0.35
        # The provider waited the Retry-After, not the 0.05 s back-off.
        assert r.sink.states == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTED]
        assert "429" in r.sink.statuses[0][1]


@pytest.mark.anyio
async def test_execute_lands_writes_and_eco_off_returns_to_the_previous_mode() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        assert (await r.provider.execute(command(LIVING, SetMode(ThermostatMode.HEAT_COOL)))).ok
        await r.sink.wait_for(lambda: thermostat(r.sink.latest).mode is ThermostatMode.HEAT_COOL)
        assert (await r.provider.execute(command(LIVING, SetEco(True)))).ok
        await r.sink.wait_for(lambda: thermostat(r.sink.latest).mode is ThermostatMode.ECO)
        assert (await r.provider.execute(command(LIVING, SetEco(False)))).ok
        await r.sink.wait_for(lambda: thermostat(r.sink.latest).mode is ThermostatMode.HEAT_COOL)
        path = f"/devices/thermostats/{LIVING}"
        assert r.sim.writes == [
            (path, {"hvac_mode": "heat-cool"}),
            (path, {"hvac_mode": "eco"}),
            (path, {"hvac_mode": "heat-cool"}),
        ]


@pytest.mark.anyio
async def test_setpoints_are_written_in_the_display_scale_rounded_like_python_nest() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        assert (await r.provider.execute(command(LIVING, SetHeat(21.3)))).ok
        await r.sink.wait_for(lambda: thermostat(r.sink.latest).heat_setpoint_c == 21.5)
        r.sim.home.set_display(LIVING, scale="F", label=None)
        r.sim.home.set_ambient(LIVING, 25.0)  # rides in the same put as the new scale
        await r.sink.wait_for(lambda: thermostat(r.sink.latest).ambient_c == 25.0)
        assert (await r.provider.execute(command(LIVING, SetHeat(22.2)))).ok
        path = f"/devices/thermostats/{LIVING}"
        assert r.sim.writes == [
            (path, {"target_temperature_c": 21.5}),
            (path, {"target_temperature_f": 72}),
        ]


@pytest.mark.anyio
async def test_execute_maps_a_400_in_eco_mode_to_invalid() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        assert (await r.provider.execute(command(LIVING, SetEco(True)))).ok
        await r.sink.wait_for(lambda: thermostat(r.sink.latest).mode is ThermostatMode.ECO)
        result = await r.provider.execute(command(LIVING, SetHeat(22.0)))
        assert (result.ok, result.reason) == (False, FailureReason.INVALID)
        assert "eco mode" in result.detail


@pytest.mark.anyio
async def test_execute_maps_429_and_offline() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        r.sim.fail_next("write", 1, 429, headers={"Retry-After": "7"})
        limited = await r.provider.execute(command(LIVING, SetHeat(21.0)))
        assert (limited.reason, limited.retry_after_s) == (FailureReason.RATE_LIMITED, 7.0)
        assert "Blocked" in limited.detail
        r.sim.home.set_online(LIVING, False)
        offline = await r.provider.execute(command(LIVING, SetHeat(21.0)))
        assert offline.reason is FailureReason.OFFLINE


@pytest.mark.anyio
async def test_execute_refuses_unknown_and_inapplicable_targets() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        unknown = await r.provider.execute(command("nope", SetHeat(21.0)))
        assert unknown.reason is FailureReason.NOT_FOUND
        wrong = await r.provider.execute(command(ALARM, SetHeat(21.0)))
        assert wrong.reason is FailureReason.INVALID
        assert r.sim.requests == []


@pytest.mark.anyio
async def test_execute_without_a_server_is_a_network_failure() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        home = r.provider.home
    # The simulator is gone; the provider still holds the last picture.
    async with make(NestWwnProvider, "nest_wwn", api_url=r.sim.url, token=TOKEN) as orphan:
        orphan.home = home
        result = await orphan.execute(command(LIVING, SetHeat(21.0)))
        assert (result.ok, result.reason) == (False, FailureReason.NETWORK)


def scripted_stream(document: dict[str, Any]) -> tuple[list[int], http.Handler]:
    """A raw loopback SSE server: junk, a good put, then an `error` event (first connection)
    or a clean end of the stream (later ones)."""
    opened: list[int] = []
    good = json.dumps({"path": "/", "data": document})
    unusable = json.dumps({"path": "/devices/thermostats/x", "data": {"hvac_mode": "turbo"}})

    async def handler(request: http.Request) -> http.StreamingResponse:
        opened.append(1)
        first = len(opened) == 1

        async def body() -> AsyncIterator[bytes]:
            yield b"event: put\ndata: {not json\n\n"
            yield b'event: put\ndata: {"path": "/"}\n\n'  # a put without data
            yield f"event: put\ndata: {good}\n\n".encode()
            yield f"event: put\ndata: {unusable}\n\n".encode()  # a device without a structure
            if first:
                yield b"event: error\ndata: Internal stream error\n\n"

        return http.StreamingResponse(200, body(), {"Content-Type": "text/event-stream"})

    return opened, handler


@pytest.mark.anyio
async def test_malformed_puts_are_skipped_and_a_clean_end_is_a_disconnect() -> None:
    document = nest_wwn.document(SimHome.demo(), token=TOKEN, base_url="http://sim.invalid")
    opened, handler = scripted_stream(document)
    sink = RecordingSink()
    async with http.serve(handler) as server:
        wwn = make(
            NestWwnProvider, "nest_wwn", api_url=server.url, token=TOKEN, backoff_initial_s=0.01
        )
        async with wwn, anyio.create_task_group() as tasks:
            tasks.start_soon(wwn.run, sink)
            await sink.wait_for(lambda: len(sink.statuses) >= 4)
            tasks.cancel_scope.cancel()
    assert sink.statuses[:4] == [
        (ConnectionState.CONNECTED, "streaming"),
        (ConnectionState.DISCONNECTED, "stream error: Internal stream error"),
        (ConnectionState.CONNECTED, "streaming"),
        (ConnectionState.DISCONNECTED, "stream closed by the server"),
    ]
    assert len(opened) >= 2
    assert wwn.stats.vendor_errors == 1
    assert wwn.stats.malformed >= 4  # two per connection, each skipped
    health = sink.payload_health("acct")
    assert health.rejected_total >= 4
    assert health.present["x"]["structure_id"].kind == "missing"  # left out, noted
    assert all(set(home.devices) == set(sink.snapshots[0].devices) for home in sink.snapshots)
    assert thermostat(sink.latest).mode is ThermostatMode.HEAT
