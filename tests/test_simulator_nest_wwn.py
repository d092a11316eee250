"""The Works with Nest simulator, spoken to over real loopback HTTP and SSE."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import h11
import httpx
import pytest
from httpx_sse import ServerSentEvent, aconnect_sse

from roost.simulator import http, nest_wwn
from roost.simulator.home import SimCamera, SimHome
from roost.simulator.nest_wwn import NestWwnSimulator

FIXTURE = Path("/work/shared/fixtures/nest_wwn/jtsiros-apiResponse.json")
NOW = datetime(2026, 1, 15, 8, 30, 0, tzinfo=UTC)
LIVING = "thermostat-living-room"
BEDROOM = "thermostat-bedroom"
ALARM = "alarm-hallway"
CAMERA = "camera-front-door"
HOME = "structure-home"
ERROR_DOCS = "https://developers.nest.com/documentation/cloud/error-messages#"

pytestmark = pytest.mark.anyio


def demo_home() -> SimHome:
    return SimHome.demo(clock=lambda: NOW)


@asynccontextmanager
async def running(
    home: SimHome | None = None, **options: Any
) -> AsyncIterator[tuple[NestWwnSimulator, httpx.AsyncClient]]:
    options.setdefault("keepalive_s", 0.2)
    async with (
        nest_wwn.serve(home or demo_home(), **options) as sim,
        httpx.AsyncClient(headers={"Authorization": f"Bearer {sim.token}"}, timeout=5) as client,
    ):
        with anyio.fail_after(10):
            yield sim, client


@asynccontextmanager
async def stream(
    sim: NestWwnSimulator, client: httpx.AsyncClient, path: str = "/"
) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
    """Open the event stream the way a WWN client does: follow the 307 by hand."""
    url = sim.url + path
    if sim.redirect:
        hop = await client.get(url, headers={"Accept": "text/event-stream"})
        assert hop.status_code == 307
        url = hop.headers["location"]
    async with aconnect_sse(client, "GET", url) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        yield source.aiter_sse()


async def next_event(events: AsyncIterator[ServerSentEvent]) -> Any:
    with anyio.fail_after(2):
        return await anext(events)


async def drain(events: AsyncIterator[ServerSentEvent]) -> None:
    with anyio.fail_after(2):
        async for _ in events:
            pass


async def next_put(events: AsyncIterator[ServerSentEvent]) -> dict[str, Any]:
    while True:
        event = await next_event(events)
        if event.event == "put":
            payload: dict[str, Any] = json.loads(event.data)
            return payload
        assert event.event == "keep-alive"


def api(sim: NestWwnSimulator, path: str) -> str:
    """A data URL on the stream host, skipping the 307 hop."""
    return sim.stream_host_url + path


def fixture_keys(*path: str) -> set[str]:
    node: Any = json.loads(FIXTURE.read_text())
    for part in path:
        node = node[part]
    first = next(iter(node.values())) if path[-1] != "metadata" else node
    return set(first)


def assert_wwn_error(response: httpx.Response, status: int, message: str, slug: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == message
    assert body["message"] == message
    assert body["type"] == ERROR_DOCS + slug
    uuid.UUID(body["instance"])


# -- the stream ------------------------------------------------------------------------------


async def test_stream_redirects_then_puts_the_whole_document_with_the_real_field_names() -> None:
    async with running() as (sim, client):
        hop = await client.get(sim.url + "/", headers={"Accept": "text/event-stream"})
        assert hop.status_code == 307
        assert hop.headers["location"] == sim.url + "/stream-host/"

        async with stream(sim, client) as events:
            put = await next_event(events)

    assert put.event == "put"
    payload = json.loads(put.data)
    assert payload["path"] == "/"
    doc = payload["data"]
    assert set(doc) == {"devices", "structures", "metadata"}
    assert set(doc["devices"]) == {"thermostats", "smoke_co_alarms", "cameras"}
    for kind in ("thermostats", "smoke_co_alarms", "cameras"):
        for device in doc["devices"][kind].values():
            assert fixture_keys("devices", kind) <= set(device), kind
    structure = doc["structures"][HOME]
    assert fixture_keys("structures") <= set(structure)
    assert set(doc["metadata"]) == fixture_keys("metadata")

    living = doc["devices"]["thermostats"][LIVING]
    assert living["device_id"] == LIVING
    assert living["structure_id"] == HOME
    assert living["name"] == "Living Room"
    assert living["where_name"] == "Living Room"
    assert living["hvac_mode"] == "heat"
    assert living["hvac_state"] == "heating"  # 19.5 °C in a room set to 20 °C
    assert living["target_temperature_c"] == 20
    assert living["target_temperature_f"] == 68
    assert living["ambient_temperature_c"] == 19.5
    assert living["temperature_scale"] == "C"
    assert living["fan_timer_timeout"] == "1970-01-01T00:00:00.000Z"
    assert (living["can_heat"], living["can_cool"], living["has_fan"]) == (True, True, True)
    assert doc["devices"]["thermostats"][BEDROOM]["target_temperature_c"] == 19
    assert doc["devices"]["cameras"][CAMERA]["name"] == "Front Door"
    assert structure["name"] == "Home"
    assert structure["away"] == "home"
    assert structure["time_zone"] == "Europe/London"
    assert structure["thermostats"] == [LIVING, BEDROOM]
    assert structure["smoke_co_alarms"] == [ALARM]
    assert structure["cameras"] == [CAMERA]
    assert structure["wheres"][living["where_id"]]["name"] == "Living Room"
    assert doc["metadata"]["access_token"] == sim.token


async def test_a_change_of_the_home_pushes_a_new_put() -> None:
    async with running() as (sim, client), stream(sim, client) as events:
        await next_put(events)
        sim.home.set_away(HOME, True)
        put = await next_put(events)
        assert put["data"]["structures"][HOME]["away"] == "away"

        sim.home.set_co(ALARM, "emergency")
        doc = (await next_put(events))["data"]
        assert doc["devices"]["smoke_co_alarms"][ALARM]["co_alarm_state"] == "emergency"
        assert doc["devices"]["smoke_co_alarms"][ALARM]["ui_color_state"] == "red"
        assert doc["structures"][HOME]["co_alarm_state"] == "emergency"
        assert doc["structures"][HOME]["smoke_alarm_state"] == "ok"


async def test_keepalives_arrive_when_idle_and_can_be_silenced() -> None:
    async with running(keepalive_s=0.1) as (sim, client), stream(sim, client) as events:
        assert (await next_event(events)).event == "put"
        for _ in range(2):
            keepalive = await next_event(events)
            assert (keepalive.event, keepalive.data) == ("keep-alive", "null")

        sim.silence_keepalives()
        await anyio.sleep(0.6)  # six keep-alive periods
        sim.home.set_ambient(LIVING, 23.0)
        late = []
        while (event := await next_event(events)).event != "put":
            late.append(event.event)
        assert late in ([], ["keep-alive"])  # at most one was in flight when silenced
        assert (
            json.loads(event.data)["data"]["devices"]["thermostats"][LIVING][
                "ambient_temperature_c"
            ]
            == 23
        )


async def test_keepalives_keep_coming_while_the_home_changes_elsewhere() -> None:
    """Real WWN sends keep-alives on its own clock: changes outside this stream's data (here
    the other thermostat, every 30 ms) must not postpone them past the client's watchdog."""
    path = f"/devices/thermostats/{LIVING}"
    async with running(keepalive_s=0.1) as (sim, client), stream(sim, client, path) as events:
        assert (await next_event(events)).event == "put"
        async with anyio.create_task_group() as tasks:

            async def churn() -> None:
                for step in range(1000):
                    sim.home.set_ambient(BEDROOM, 15.0 + step % 2)
                    await anyio.sleep(0.03)

            tasks.start_soon(churn)
            with anyio.fail_after(1):
                keepalive = await next_event(events)
            tasks.cancel_scope.cancel()
        assert keepalive.event == "keep-alive"


async def test_python_nest_writable_fields_scale_label_and_eta() -> None:
    async with running() as (sim, client):
        url = f"{sim.url}/devices/thermostats/{LIVING}"
        answer = await client.put(url, json={"temperature_scale": "F", "label": "Hall"})
        if answer.status_code == 307:
            answer = await client.put(answer.headers["Location"], json={"temperature_scale": "F"})
        assert answer.status_code == 200
        assert sim.home.thermostat(LIVING).scale == "F"
        document = nest_wwn.document(sim.home, token=sim.token, base_url=sim.url)
        assert document["devices"]["thermostats"][LIVING]["temperature_scale"] == "F"

        eta = {
            "trip_id": "t1",
            "estimated_arrival_window_begin": "2026-12-01T17:30:00+00:00",
            "estimated_arrival_window_end": "2026-12-01T17:31:00+00:00",
        }
        answer = await client.put(f"{sim.url}/structures/{HOME}", json={"eta": eta})
        if answer.status_code == 307:
            answer = await client.put(answer.headers["Location"], json={"eta": eta})
        assert answer.status_code == 200
        document = nest_wwn.document(sim.home, token=sim.token, base_url=sim.url)
        assert document["structures"][HOME]["eta_begin"] == "2026-12-01T17:30:00+00:00"

        bad = await client.put(
            f"{sim.url}/devices/thermostats/{LIVING}",
            follow_redirects=True,
            json={"temperature_scale": "K"},
        )
        assert bad.status_code == 400


async def test_streaming_a_sub_path_puts_that_subtree() -> None:
    path = f"/devices/thermostats/{LIVING}"
    async with running() as (sim, client), stream(sim, client, path) as events:
        put = await next_put(events)
        assert put["path"] == path
        assert put["data"]["device_id"] == LIVING
        sim.home.set_ambient(BEDROOM, 15.0)  # elsewhere: this stream stays quiet
        sim.home.set_ambient(LIVING, 21.0)
        assert (await next_put(events))["data"]["ambient_temperature_c"] == 21


async def test_physics_runs_in_the_background_when_asked() -> None:
    home = demo_home()
    async with running(home, physics_interval_s=0.01):
        start = home.version
        with anyio.fail_after(2):
            await home.wait_changed(start)
        assert home.thermostats[LIVING].ambient_c > 19.5


# -- reads ---------------------------------------------------------------------------------


async def test_rest_read_of_a_data_location() -> None:
    async with running() as (sim, client):
        hop = await client.get(sim.url + f"/devices/thermostats/{LIVING}")
        assert hop.status_code == 307
        answer = await client.get(hop.headers["location"])
        assert answer.status_code == 200
        assert answer.json()["device_id"] == LIVING

        away = await client.get(api(sim, f"/structures/{HOME}/away"))
        assert away.json() == "home"
        missing = await client.get(api(sim, "/devices/thermostats/nope"))
        assert_wwn_error(missing, 404, "Not found", "not-found")


async def test_requests_without_the_token_get_401() -> None:
    async with running() as (sim, client):
        for headers in ({"Authorization": "Bearer c.wrong"}, {"Authorization": ""}):
            answer = await client.get(sim.url + "/", headers=headers)
            assert_wwn_error(answer, 401, "Unauthorized", "auth-error")
        sse = await client.get(
            sim.url + "/",
            headers={"Authorization": "Bearer c.wrong", "Accept": "text/event-stream"},
        )
        assert sse.status_code == 401


# -- writes --------------------------------------------------------------------------------


async def test_a_write_follows_the_307_lands_in_the_home_and_is_streamed() -> None:
    path = f"/devices/thermostats/{LIVING}"
    async with running() as (sim, client), stream(sim, client) as events:
        await next_put(events)
        hop = await client.put(sim.url + path, json={"target_temperature_c": 21.5})
        assert hop.status_code == 307
        assert hop.headers["location"] == sim.stream_host_url + path
        answer = await client.put(hop.headers["location"], json={"target_temperature_c": 21.5})

        assert answer.status_code == 200
        assert answer.json() == {"target_temperature_c": 21.5}
        assert sim.home.thermostats[LIVING].target_c == 21.5
        assert sim.writes == [(path, {"target_temperature_c": 21.5})]
        assert [r.status for r in sim.requests] == [307, 200]
        thermostat = (await next_put(events))["data"]["devices"]["thermostats"][LIVING]
        assert thermostat["target_temperature_c"] == 21.5
        assert thermostat["target_temperature_f"] == 71


async def test_patch_structure_away_and_mode_changes() -> None:
    async with running(redirect=False) as (sim, client):
        answer = await client.patch(sim.url + f"/structures/{HOME}", json={"away": "away"})
        assert answer.status_code == 200
        assert sim.home.structures[HOME].away is True

        eco = await client.put(
            sim.url + f"/devices/thermostats/{LIVING}", json={"hvac_mode": "eco"}
        )
        assert eco.status_code == 200
        doc = (await client.get(sim.url + f"/devices/thermostats/{LIVING}")).json()
        assert (doc["hvac_mode"], doc["previous_hvac_mode"]) == ("eco", "heat")

        both = {
            "hvac_mode": "heat-cool",
            "target_temperature_low_c": 18,
            "target_temperature_high_c": 25,
        }
        answer = await client.put(sim.url + f"/devices/thermostats/{LIVING}", json=both)
        assert answer.status_code == 200
        thermostat = sim.home.thermostats[LIVING]
        assert (thermostat.mode, thermostat.target_low_c, thermostat.target_high_c) == (
            "heat-cool",
            18,
            25,
        )


async def test_fahrenheit_targets_are_converted() -> None:
    async with running(redirect=False) as (sim, client):
        answer = await client.put(
            sim.url + f"/devices/thermostats/{LIVING}", json={"target_temperature_f": 70}
        )
        assert answer.status_code == 200
        assert sim.home.thermostats[LIVING].target_c == 21.0


async def test_fan_timer_runs_for_its_duration() -> None:
    async with running(redirect=False) as (sim, client):
        body = {"fan_timer_active": True, "fan_timer_duration": 30}
        answer = await client.put(sim.url + f"/devices/thermostats/{LIVING}", json=body)
        assert answer.status_code == 200
        doc = (await client.get(sim.url + f"/devices/thermostats/{LIVING}")).json()
    assert doc["fan_timer_active"] is True
    assert doc["fan_timer_duration"] == 30
    assert doc["fan_timer_timeout"] == "2026-01-15T09:00:00.000Z"
    assert sim.home.thermostats[LIVING].fan_timer_timeout == NOW + timedelta(minutes=30)


def _eco(home: SimHome) -> None:
    home.set_mode(LIVING, "eco")


def _heat_cool(home: SimHome) -> None:
    home.set_mode(LIVING, "heat-cool")


def _lock(home: SimHome) -> None:
    home.thermostats[LIVING].locked = True  # locked range 19–22 °C


def _offline(home: SimHome) -> None:
    home.set_online(LIVING, False)


def _co_warning(home: SimHome) -> None:
    home.set_co(ALARM, "warning")


def _nothing(home: SimHome) -> None:
    pass


THERMOSTAT = f"/devices/thermostats/{LIVING}"

REFUSED_WRITES = [
    pytest.param(_nothing, THERMOSTAT, b"{not json", 400, "Invalid content sent", id="bad-json"),
    pytest.param(_nothing, THERMOSTAT, b"[20]", 400, "Invalid content sent", id="not-an-object"),
    pytest.param(
        _nothing,
        "/devices/thermostats/nope",
        {"target_temperature_c": 20},
        404,
        "Not found",
        id="unknown-device",
    ),
    pytest.param(
        _nothing, "/structures/nope", {"away": "away"}, 404, "Not found", id="unknown-home"
    ),
    pytest.param(
        _nothing,
        THERMOSTAT,
        {"ambient_temperature_c": 25, "target_temperature_c": 20},
        400,
        "No write permission(s) for field(s): ambient_temperature_c",
        id="read-only-field",
    ),
    pytest.param(
        _nothing,
        THERMOSTAT,
        {"colour": "red"},
        400,
        "No write permission(s) for field(s): colour",
        id="unknown-field",
    ),
    pytest.param(
        _nothing,
        f"/devices/smoke_co_alarms/{ALARM}",
        {"co_alarm_state": "ok"},
        400,
        "No write permission(s) for field(s): co_alarm_state",
        id="alarm-is-read-only",
    ),
    pytest.param(
        _eco,
        THERMOSTAT,
        {"target_temperature_c": 21},
        400,
        "Cannot change target temperature while in eco mode",
        id="eco",
    ),
    pytest.param(
        _nothing,
        THERMOSTAT,
        {"target_temperature_c": 35},
        400,
        "Temperature '35' is out of range",
        id="too-hot",
    ),
    pytest.param(
        _nothing,
        THERMOSTAT,
        {"target_temperature_c": 8.5},
        400,
        "Temperature '8.5' is out of range",
        id="too-cold",
    ),
    pytest.param(
        _nothing,
        THERMOSTAT,
        {"target_temperature_f": 95},
        400,
        "Temperature '95' is out of range",
        id="too-hot-f",
    ),
    pytest.param(
        _nothing,
        THERMOSTAT,
        {"target_temperature_c": "warm"},
        400,
        "Temperature 'warm' is in wrong format",
        id="wrong-format",
    ),
    pytest.param(
        _nothing, THERMOSTAT, {"hvac_mode": "auto"}, 400, "Invalid hvac_mode 'auto'", id="bad-mode"
    ),
    pytest.param(
        _nothing,
        f"/devices/thermostats/{BEDROOM}",
        {"hvac_mode": "cool"},
        400,
        "HVAC mode 'cool' is not supported by this thermostat",
        id="cannot-cool",
    ),
    pytest.param(
        _heat_cool,
        THERMOSTAT,
        {"target_temperature_c": 21},
        400,
        "Cannot change target_temperature_c while in heat-cool mode",
        id="single-target-in-heat-cool",
    ),
    pytest.param(
        _nothing,
        THERMOSTAT,
        {"target_temperature_low_c": 18},
        400,
        "Cannot change target_temperature_low_c while in heat mode",
        id="range-in-heat",
    ),
    pytest.param(
        _lock,
        THERMOSTAT,
        {"target_temperature_c": 23},
        400,
        "Temperature '23' is outside the locked range",
        id="locked",
    ),
    pytest.param(
        _offline,
        THERMOSTAT,
        {"target_temperature_c": 21},
        400,
        "Thermostat is not online",
        id="offline",
    ),
    pytest.param(
        _nothing,
        f"/devices/thermostats/{BEDROOM}",
        {"fan_timer_active": True},
        400,
        "Thermostat does not have a fan",
        id="no-fan",
    ),
    pytest.param(
        _co_warning,
        THERMOSTAT,
        {"fan_timer_active": True},
        400,
        "Cannot activate fan during smoke/co safety shutoff",
        id="safety-shutoff",
    ),
    pytest.param(
        _nothing,
        f"/structures/{HOME}",
        {"away": "auto-away"},
        400,
        "Invalid away state 'auto-away'",
        id="bad-away",
    ),
]


@pytest.mark.parametrize(("setup", "path", "body", "status", "message"), REFUSED_WRITES)
async def test_refused_writes_answer_the_wwn_error_and_change_nothing(
    setup: Callable[[SimHome], None], path: str, body: Any, status: int, message: str
) -> None:
    home = demo_home()
    setup(home)
    before = home.to_dict()
    async with running(home, redirect=False) as (sim, client):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = await client.put(sim.url + path, content=content)

    assert answer.status_code == status, answer.text
    error = answer.json()
    assert (error["error"], error["message"]) == (message, message)
    assert error["type"].startswith(ERROR_DOCS)
    uuid.UUID(error["instance"])
    assert home.to_dict() == before
    assert sim.writes == []
    assert [(r.path, r.status) for r in sim.requests] == [(path, status)]


async def test_known_error_types_match_the_documented_slugs() -> None:
    home = demo_home()
    home.set_smoke(ALARM, "emergency")
    async with running(home, redirect=False) as (sim, client):
        fan = await client.put(sim.url + THERMOSTAT, json={"fan_timer_active": True})
        assert_wwn_error(
            fan, 400, "Cannot activate fan during smoke/co safety shutoff", "safety-shutoff-on"
        )
        fmt = await client.put(sim.url + THERMOSTAT, json={"target_temperature_c": "x"})
        assert_wwn_error(fmt, 400, "Temperature 'x' is in wrong format", "format-error")
        assert fmt.json()["details"] == {"field_name": "target_temperature_c"}


async def test_injected_write_failures_then_recovery() -> None:
    async with running() as (sim, client):
        sim.fail_next("write", 1, 429, headers={"Retry-After": "7"})
        sim.fail_next("write", 1, 503)
        url = api(sim, THERMOSTAT)
        blocked = await client.put(url, json={"target_temperature_c": 21})
        assert_wwn_error(blocked, 429, "Blocked", "blocked")
        assert blocked.headers["retry-after"] == "7"
        unavailable = await client.put(url, json={"target_temperature_c": 21})
        assert unavailable.status_code == 503
        assert "retry-after" not in unavailable.headers
        assert sim.home.thermostats[LIVING].target_c == 20

        ok = await client.put(url, json={"target_temperature_c": 21})
        assert ok.status_code == 200
        assert [r.status for r in sim.requests] == [429, 503, 200]


async def test_injected_stream_failure() -> None:
    async with running(redirect=False) as (sim, client):
        sim.fail_next("read", 1, 429, headers={"Retry-After": "3"})
        refused = await client.get(sim.url + "/", headers={"Accept": "text/event-stream"})
        assert_wwn_error(refused, 429, "Blocked", "blocked")
        async with stream(sim, client) as events:
            assert (await next_event(events)).event == "put"


# -- faults on the stream ------------------------------------------------------------------


async def test_revoking_the_token_sends_auth_revoked_and_closes_the_stream() -> None:
    async with running() as (sim, client):
        async with stream(sim, client) as events:
            await next_put(events)
            sim.revoke_token()
            revoked = await next_event(events)
            assert revoked.event == "auth_revoked"
            with anyio.fail_after(2), pytest.raises(StopAsyncIteration):
                await anext(events)

        refused = await client.get(api(sim, "/"))
        assert refused.status_code == 401

        sim.set_token("c.new-token")
        renewed = await client.get(api(sim, "/"), headers={"Authorization": "Bearer c.new-token"})
        assert renewed.status_code == 200
        assert renewed.json()["metadata"]["access_token"] == "c.new-token"


async def test_dropped_streams_end_the_client_iteration_and_reconnect_works() -> None:
    async with running() as (sim, client):
        async with stream(sim, client) as events:
            await next_put(events)
            sim.drop_streams()
            with anyio.fail_after(2), pytest.raises(httpx.RemoteProtocolError):
                await anext(events)

        async with stream(sim, client) as events:
            assert (await next_event(events)).event == "put"


async def test_leaving_serve_closes_open_streams_and_leaves_no_tasks() -> None:
    urls: list[str] = []
    stop = anyio.Event()
    ready = anyio.Event()

    async def simulator() -> None:
        async with nest_wwn.serve(demo_home(), redirect=False, physics_interval_s=0.01) as sim:
            urls.append(sim.url)
            ready.set()
            await stop.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks, httpx.AsyncClient(timeout=5) as client:
            tasks.start_soon(simulator)
            await ready.wait()
            headers = {"Authorization": "Bearer c.sim-token"}
            async with aconnect_sse(client, "GET", urls[0] + "/", headers=headers) as source:
                events = source.aiter_sse()
                assert (await next_event(events)).event == "put"
                stop.set()  # serve() returns although a client still holds a stream
                with pytest.raises(httpx.RemoteProtocolError):
                    await drain(events)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(urls[0] + "/_sim/state")


async def test_a_failing_handler_answers_500_and_garbage_answers_400() -> None:
    async def broken(request: http.Request) -> http.Response:
        raise RuntimeError("boom")

    with anyio.fail_after(5):
        async with http.serve(broken) as server, httpx.AsyncClient() as client:
            assert server.url == f"http://127.0.0.1:{server.port}"
            assert (await client.get(server.url + "/x")).status_code == 500
            async with await anyio.connect_tcp("127.0.0.1", server.port) as sock:
                await sock.send(b"NOT HTTP AT ALL\r\n\r\n")
                answer = await sock.receive()
            assert answer.startswith(b"HTTP/1.1 400 ")


async def test_connections_are_kept_alive_between_requests() -> None:
    async with (
        running(redirect=False) as (sim, _),
        await anyio.connect_tcp("127.0.0.1", sim.server.port) as sock,
    ):
        connection = h11.Connection(h11.CLIENT)
        for path in ("/_sim/state", "/_sim/writes"):
            request = h11.Request(method="GET", target=path, headers=[("Host", "sim")])
            await sock.send(connection.send(request) + connection.send(h11.EndOfMessage()))
            status, body = await _read_response(connection, sock)
            assert status == 200
            assert json.loads(body) is not None
            connection.start_next_cycle()


async def _read_response(connection: h11.Connection, sock: Any) -> tuple[int, bytes]:
    status, body = 0, b""
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await sock.receive())
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, body


# -- the /_sim/ control surface ------------------------------------------------------------


async def test_control_surface_drives_scenarios_over_http() -> None:
    async with running() as (sim, client), stream(sim, client) as events:
        await next_put(events)
        hallway = await client.post(
            sim.url + "/_sim/co", json={"device": ALARM, "state": "emergency"}
        )
        assert hallway.status_code == 200
        doc = (await next_put(events))["data"]
        assert doc["devices"]["smoke_co_alarms"][ALARM]["co_alarm_state"] == "emergency"

        await client.post(sim.url + "/_sim/camera_event", json={"device": CAMERA, "person": True})
        camera = (await next_put(events))["data"]["devices"]["cameras"][CAMERA]
        assert camera["last_event"]["has_person"] is True
        assert camera["last_event"]["has_motion"] is True
        assert camera["last_event"]["start_time"] == "2026-01-15T08:30:00.000Z"

        await client.post(sim.url + "/_sim/away", json={"structure": HOME, "away": True})
        assert (await next_put(events))["data"]["structures"][HOME]["away"] == "away"

        state = (await client.get(sim.url + "/_sim/state")).json()
        assert state["alarms"][ALARM]["co"] == "emergency"
        assert state["structures"][HOME]["away"] is True

        unknown = await client.post(sim.url + "/_sim/co", json={"device": "nope", "state": "ok"})
        assert unknown.status_code == 404
        invalid = await client.post(sim.url + "/_sim/co", json={"device": ALARM, "state": "fire"})
        assert invalid.status_code == 400
        missing = await client.post(sim.url + "/_sim/online", json={"device": LIVING})
        assert missing.status_code == 400

        await client.put(api(sim, f"/structures/{HOME}"), json={"away": "home"})
        writes = (await client.get(sim.url + "/_sim/writes")).json()
        assert writes == [{"path": f"/structures/{HOME}", "body": {"away": "home"}}]

        dropped = await client.post(sim.url + "/_sim/drop_streams")
        assert dropped.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            await drain(events)


# -- the home's physics (vendor-neutral) ---------------------------------------------------


def test_heating_warms_the_room_to_the_target_then_idles() -> None:
    home = demo_home()
    living = home.thermostats[LIVING]
    assert living.hvac_state == "heating"
    home.tick(60)
    assert 19.5 < living.ambient_c < 20
    home.tick(600)
    assert living.ambient_c == 20
    assert living.hvac_state == "off"


def test_an_idle_room_drifts_to_the_outdoors_and_eco_heats_only_below_its_floor() -> None:
    home = SimHome.demo(outdoor_c=0.0)
    bedroom = home.thermostats[BEDROOM]
    home.set_mode(BEDROOM, "off")
    assert bedroom.hvac_state == "off"
    home.tick(3600)
    assert bedroom.ambient_c < 18.5
    assert bedroom.hvac_state == "off"

    home.set_mode(BEDROOM, "eco")
    assert bedroom.previous_mode == "off"
    home.set_ambient(BEDROOM, 13.0)
    assert bedroom.hvac_state == "off"  # above the 12.5 °C eco floor
    home.set_ambient(BEDROOM, 11.0)
    assert bedroom.hvac_state == "heating"


def test_cooling_and_fan_timer_expiry() -> None:
    clock = [NOW]
    home = SimHome.demo(clock=lambda: clock[0])
    home.set_mode(LIVING, "cool")
    home.set_target(LIVING, 22.0)
    home.set_ambient(LIVING, 25.0)
    assert home.thermostats[LIVING].hvac_state == "cooling"
    home.tick(60)
    assert home.thermostats[LIVING].ambient_c < 25

    home.set_fan_timer(LIVING, True, 15)
    clock[0] = NOW + timedelta(minutes=16)
    home.tick(1)
    assert home.thermostats[LIVING].fan_timer_active is False


async def test_wait_changed_wakes_on_a_change() -> None:
    home = demo_home()
    seen = home.version

    async def change_soon() -> None:
        await anyio.sleep(0.05)
        home.set_online(CAMERA, False)

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(change_soon)
            assert await home.wait_changed(seen) == seen + 1
    assert home.cameras[CAMERA].online is False


def test_scenario_methods_reject_unknown_ids_and_values() -> None:
    home = demo_home()
    with pytest.raises(KeyError):
        home.set_co("nope", "ok")
    with pytest.raises(ValueError, match="invalid smoke state"):
        home.set_smoke(ALARM, "fire")
    home.add(SimCamera(id="camera-yard", name="Yard", structure_id=HOME, room="Yard"))
    with pytest.raises(ValueError, match="not a doorbell"):
        home.doorbell_chime("camera-yard")
    home.doorbell_chime(CAMERA)
    assert home.cameras[CAMERA].last_chime == NOW
