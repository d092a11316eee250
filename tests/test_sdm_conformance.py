"""Conformance: every real SDM payload in tests/fixtures/sdm/ parses and normalizes.

The fixtures are verbatim copies from openHAB's and python-google-nest-sdm's tests (see
SOURCES.txt). The event payloads are also delivered verbatim through the simulator's
Pub/Sub to a running provider, under the project and device ids they name.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from roost.core.commands import FailureReason
from roost.core.events import Chime, DeviceEvent, Motion, Person, Sound
from roost.core.model import Camera, Doorbell, HvacActivity, Thermostat, ThermostatMode
from roost.providers.health import PayloadHealth
from roost.providers.sdm import normalize
from roost.providers.sdm.errors import ApiError, to_result
from roost.providers.sdm.messages import PayloadError, parse_event, parse_pull
from roost.providers.sdm.provider import SdmProvider
from roost.providers.sdm.records import DeviceRecord
from roost.simulator import sdm
from roost.simulator.home import SimCamera, SimHome, SimStructure
from tests.provider_kit import make

FIXTURES = Path(__file__).parent / "fixtures" / "sdm"
AT = datetime(2019, 1, 1, tzinfo=UTC)


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def listed() -> dict[str, DeviceRecord]:
    records = (
        DeviceRecord.from_resource(d, AT)
        for d in load("openhab-list-devices-response.json")["devices"]
    )
    return {normalize.short_id(r.name): r for r in records}


# -- devices ---------------------------------------------------------------------------------


def test_the_listed_devices_normalize() -> None:
    home = normalize.home("acct", [], listed().values())
    assert {k: type(v) for k, v in home.devices.items()} == {
        "thermostat-device-id": Thermostat,
        "camera-device-id": Camera,
        "display-device-id": Camera,  # a Nest Hub Max: its camera traits
        "doorbell-device-id": Doorbell,
    }
    doorbell = home.devices["doorbell-device-id"]
    assert (doorbell.name, doorbell.room, doorbell.structure_id) == (
        "Doorbell Room Name",  # customName is empty: the room's name stands in
        "Doorbell Room Name",
        "structure-id",
    )


def test_the_thermostat_fixture_normalizes_field_by_field() -> None:
    record = DeviceRecord.from_resource(load("openhab-thermostat-device-response.json"), AT)
    thermostat = normalize.device(record, {})
    assert thermostat == Thermostat(
        id="thermostat-device-id",
        name="Thermostat Room Name",
        structure_id="structure-id",
        room="Thermostat Room Name",
        online=True,
        mode=ThermostatMode.HEAT,
        heat_setpoint_c=14.92249,
        cool_setpoint_c=None,
        ambient_c=19.73,
        humidity=26.0,
        hvac=HvacActivity.IDLE,
        can_heat=True,
        can_cool=False,
        has_fan=True,
        fan_timer_active=True,
        fan_timer_until=datetime(2019, 5, 10, 3, 22, 54, tzinfo=UTC),
        allowed_range_c=(9.0, 32.0),
        eco_range_c=(15.34473, 24.44443),
    )
    assert listed()["thermostat-device-id"].traits == record.traits


# -- events ------------------------------------------------------------------------------------


def test_the_resource_update_event_parses_with_traits_and_four_events() -> None:
    event = parse_event(json.dumps(load("openhab-resource-update-event.json")).encode())
    assert event.resource == "enterprises/project-id/devices/device-id"
    assert event.timestamp == datetime(2019, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert event.traits is not None
    assert event.traits["sdm.devices.traits.Temperature"] == {"ambientTemperatureCelsius": 19.73}
    found = normalize.device_events(event, "acct", None, at=AT)
    assert [(type(e), e.vendor_id) for _, e in found] == [
        (Motion, "EID1"),
        (Person, "EID2"),
        (Sound, "EID3"),
        (Chime, "EID4"),
    ]
    assert all(e.device == "device-id" and e.started_at == event.timestamp for _, e in found)


def test_the_resource_update_traits_merge_into_a_thermostat() -> None:
    record = listed()["thermostat-device-id"]
    event = parse_event(load("openhab-resource-update-event.json"))
    assert event.traits is not None
    later = datetime(2019, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert record.merge(event.traits, later) == 3
    assert record.merge(event.traits, AT) == 0  # older than what is held now: stale


def test_the_relation_created_event_parses() -> None:
    event = parse_event(load("openhab-relation-created-event.json"))
    assert event.relation is not None
    assert (event.relation.type, event.relation.subject, event.relation.object) == (
        "CREATED",
        "enterprises/project-id/structures/structure-id",
        "enterprises/project-id/devices/device-id",
    )
    assert normalize.structure_id_of(event.relation.subject) == "structure-id"


def test_a_thread_repeats_its_events_under_the_same_keys() -> None:
    started, ended = (parse_event(p) for p in load("pysdm-event-thread-started-ended.json"))
    assert (started.thread_state, ended.thread_state) == ("STARTED", "ENDED")
    assert started.event_id != ended.event_id
    first = normalize.device_events(started, "acct", None, at=AT)
    again = normalize.device_events(ended, "acct", None, at=AT)
    assert [type(e) for _, e in first] == [Motion]  # ClipPreview is media, not an event
    assert [k for k, _ in first] == [k for k, _ in again]
    assert [i.preview_url for i in started.events if i.kind.endswith("ClipPreview")] == [
        "image-url-1"
    ]


def test_the_sound_and_chime_events_parse() -> None:
    sound, chime = (parse_event(p) for p in load("pysdm-relation-and-sound-events.json"))
    assert [type(e) for _, e in normalize.device_events(sound, "acct", None, at=AT)] == [Sound]
    assert [type(e) for _, e in normalize.device_events(chime, "acct", None, at=AT)] == [Chime]


def test_the_pull_response_parses_and_its_placeholder_data_is_refused() -> None:
    deliveries = parse_pull(load("openhab-pull-subscription-response.json")).deliveries
    assert [(d.ack_id, d.data) for d in deliveries] == [
        ("AID1", b"data1"),
        ("AID2", b"data2"),
        ("AID3", b"data3"),
    ]
    assert deliveries[0].publish_time == datetime(2021, 1, 1, 1, tzinfo=UTC)
    with pytest.raises(PayloadError):
        parse_event(deliveries[0].data)
    assert parse_pull({}).deliveries == []


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("openhab-failed-precondition-error.json", FailureReason.INVALID),
        ("openhab-not-found-error.json", FailureReason.NOT_FOUND),
    ],
)
def test_the_openhab_error_bodies_map(name: str, reason: FailureReason) -> None:
    body = load(name)
    error = ApiError.from_response(httpx.Response(body["error"]["code"], json=body))
    result = to_result(error)
    assert result.reason is reason
    assert body["error"]["message"] in result.detail


def test_the_pysdm_error_bodies_map() -> None:
    reasons = [
        to_result(ApiError.from_response(httpx.Response(b["error"]["code"], json=b))).reason
        for b in load("pysdm-error-bodies.json")
    ]
    assert reasons == [
        FailureReason.INVALID,
        FailureReason.UNAUTHORIZED,
        FailureReason.UNAUTHORIZED,
        FailureReason.NOT_FOUND,
        FailureReason.SERVER_ERROR,
        FailureReason.SERVER_ERROR,
    ]


# -- verbatim through the wire -------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.events: list[DeviceEvent] = []
        self.snapshots = 0
        self.health = PayloadHealth("sdm")

    async def snapshot(self, account: str, home: Any, at: datetime) -> None:
        self.snapshots += 1

    async def patch(self, account: str, changes: Any, at: datetime) -> None:
        pass

    async def device_event(self, account: str, event: DeviceEvent) -> None:
        self.events.append(event)

    async def status(self, account: str, state: Any, detail: str = "") -> None:
        pass

    def payload_health(self, account: str) -> PayloadHealth:
        return self.health


async def deliver(project: str, device: str, payloads: list[dict[str, Any]]) -> Sink:
    """Publish the payloads verbatim to a provider watching `project` with one doorbell."""
    home = SimHome()
    home.add(SimStructure(id="structure-id", name="Home"))
    home.add(
        SimCamera(
            id=device, name="Door", room="Hall", structure_id="structure-id", is_doorbell=True
        )
    )
    sink = Sink()
    async with sdm.serve(home, project_id=project, pull_wait_s=0.2, ack_deadline_s=0.5) as sim:
        provider = make(
            SdmProvider,
            "sdm",
            project_id=project,
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            refresh_token=sim.refresh_token,
            subscription=sim.subscription.name,
            api_url=sim.api_url,
            token_url=sim.token_url,
            pubsub_url=sim.pubsub_url,
        )
        async with provider, anyio.create_task_group() as tg:
            tg.start_soon(provider.run, sink)
            with anyio.fail_after(5):
                while not sink.snapshots:
                    await anyio.sleep(0.01)
                for payload in payloads:
                    sim.publish_event(payload)
                while sim.subscription.backlog:
                    await anyio.sleep(0.01)
            assert provider.stats.malformed == 0
            tg.cancel_scope.cancel()
    return sink


@pytest.mark.anyio
async def test_the_openhab_events_arrive_verbatim_over_pubsub() -> None:
    sink = await deliver(
        "project-id",
        "device-id",
        [load("openhab-resource-update-event.json"), load("openhab-relation-created-event.json")],
    )
    assert [type(e) for e in sink.events] == [Motion, Person, Sound, Chime]
    assert sink.snapshots == 2  # the list, and the relation's re-read


@pytest.mark.anyio
async def test_the_pysdm_thread_arrives_verbatim_and_fires_once() -> None:
    sink = await deliver("project-id1", "device-id1", load("pysdm-event-thread-started-ended.json"))
    assert [type(e) for e in sink.events] == [Motion]
    assert sink.events[0].structure == "structure-id"
