"""One odd value never costs another device its events, on every vendor (issue 13 item 2).

For each vendor: take a real fixture, set one field of one device to an arbitrary JSON value
(unknown strings, numbers, null, lists, objects, NaN, ±inf, 1e309, huge integers), and in
the same payload give another device a CO emergency or a temperature change. The payload is
normalized by the vendor's normalizer and diffed by the real `HomeState`; the other device's
events must be exactly those of the same change without the odd value, no event may be made
up (no device added or removed, no semantic event from an unknown value), and no
non-finite or impossible number may reach the model.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.core.bus import Bus
from roost.core.events import (
    AttributeChanged,
    CoAlarm,
    DeviceAdded,
    DeviceRemoved,
    Event,
    TemperatureChanged,
)
from roost.core.model import AlarmState, Home
from roost.providers.nest_web.normalize import normalize as nest_web_normalize
from roost.providers.nest_wwn.normalize import Normalizer
from roost.providers.netatmo.normalize import AlarmStates, HomeReading
from roost.providers.netatmo.normalize import normalize as netatmo_normalize
from roost.providers.readers import CELSIUS, PERCENT, Problems
from roost.providers.sdm import normalize as sdm
from roost.providers.sdm.records import DeviceRecord
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState

FIXTURES = Path(__file__).parent / "fixtures"
AT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ACCOUNT = "acct"

ODD_STRINGS = st.sampled_from(
    ["heating-stage2", "turbo", "EMERGENCY", "", "unknown", "OFF", "on", "1e309", "NaN"]
)
ODD_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.sampled_from([10**400, -(10**400), 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([float("nan"), float("inf"), float("-inf"), json.loads("1e309")])
    | ODD_STRINGS
    | st.text(max_size=12)
)
ODD_VALUES = (
    ODD_STRINGS
    | st.sampled_from([float("nan"), 1e6, -300.0, 10**400])
    | st.recursive(
        ODD_SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )
)
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pick(key: list[Any], every: list[Any]) -> st.SearchStrategy[Any]:
    """A field: half the time one the normalizer reads, else any (or a new one)."""
    return st.sampled_from(key) | st.sampled_from(every)


def load(path: str) -> Any:
    return json.loads((FIXTURES / path).read_text())


# --- the check every vendor shares ----------------------------------------------------------


def events_between(before: Home, after: Home) -> list[Event]:
    """The events the real HomeState makes for `before` → `after`."""

    async def diff() -> list[Event]:
        bus = Bus()
        inbox = bus.subscribe("test")
        state = HomeState(bus, EchoTracker())
        await state.snapshot(ACCOUNT, before, AT)
        await state.snapshot(ACCOUNT, after, AT)
        found: list[Event] = []
        while True:
            try:
                found.extend(inbox.receive_nowait())
            except anyio.WouldBlock:
                return found

    return anyio.run(diff)


def signature(events: list[Event], device: str) -> list[tuple[str, str, str, str]]:
    return sorted(
        (type(e).__name__, str(getattr(e, "attribute", "")), repr(e.old), repr(e.new))  # type: ignore[attr-defined]
        for e in events
        if e.device == device and hasattr(e, "new")
    )


def check_isolated(
    baseline: Home,
    clean: Home,
    odd: Home,
    odd_device: str,
    other: str,
    expected: type[Event],
    also: tuple[str, ...] = (),
) -> None:
    """`clean` is the other device's change alone, `odd` the same plus the odd value."""
    reference = events_between(baseline, clean)
    assert any(isinstance(e, expected) and e.device == other for e in reference)
    found = events_between(baseline, odd)
    assert signature(found, other) == signature(reference, other)  # every one arrived
    for event in found:
        assert not isinstance(event, DeviceAdded | DeviceRemoved)
        assert event.device in (odd_device, other, *also), event
        if event.device == odd_device and not isinstance(event, AttributeChanged):
            assert event.new is not None, event  # type: ignore[attr-defined]
    check_numbers(odd)


def check_numbers(home: Home) -> None:
    """Nothing non-finite or impossible crossed into the model."""
    for device in home.devices.values():
        for f in fields(device):
            value = getattr(device, f.name)
            numbers = value if isinstance(value, tuple) else (value,)
            for number in numbers:
                if isinstance(number, float):
                    assert math.isfinite(number), (device.id, f.name, number)
                    low, high = PERCENT if f.name == "humidity" else CELSIUS
                    assert low <= number <= high, (device.id, f.name, number)


# --- Works with Nest ------------------------------------------------------------------------

WWN = load("nest_wwn/jtsiros-apiResponse.json")
WWN_THERMOSTATS = sorted(WWN["devices"]["thermostats"])
WWN_ALARM = next(iter(WWN["devices"]["smoke_co_alarms"]))
WWN_KEY_FIELDS = [
    "hvac_mode",
    "hvac_state",
    "target_temperature_c",
    "ambient_temperature_c",
    "humidity",
    "is_online",
    "is_locked",
    "structure_id",
    "eco_temperature_low_c",
]


def wwn_home(document: dict[str, Any]) -> Home:
    return Normalizer(ACCOUNT)(document, Problems())


@PROPERTY
@given(data=st.data(), value=ODD_VALUES)
def test_wwn_an_odd_field_costs_only_its_attribute(data: st.DataObject, value: Any) -> None:
    device = data.draw(st.sampled_from(WWN_THERMOSTATS))
    raw = WWN["devices"]["thermostats"][device]
    field = data.draw(pick(WWN_KEY_FIELDS, [*sorted(raw), "brand_new_field"]))
    clean = copy.deepcopy(WWN)
    clean["devices"]["smoke_co_alarms"][WWN_ALARM]["co_alarm_state"] = "emergency"
    odd = copy.deepcopy(clean)
    odd["devices"]["thermostats"][device][field] = value
    stream = Normalizer(ACCOUNT)  # as the provider holds it: the odd put follows the first
    baseline = stream(WWN, Problems())
    check_isolated(baseline, wwn_home(clean), stream(odd, Problems()), device, WWN_ALARM, CoAlarm)


def test_wwn_the_reported_put_delivers_the_co_emergency() -> None:
    """The put from the issue: CO emergency on the Protect, `heating-stage2` elsewhere."""
    clean = copy.deepcopy(WWN)
    clean["devices"]["smoke_co_alarms"][WWN_ALARM]["co_alarm_state"] = "emergency"
    odd = copy.deepcopy(clean)
    odd["devices"]["thermostats"][WWN_THERMOSTATS[0]]["hvac_state"] = "heating-stage2"
    problems = Problems()
    home = Normalizer(ACCOUNT)(odd, problems)
    assert home.devices[WWN_THERMOSTATS[0]].hvac is None  # type: ignore[attr-defined]
    assert [(p.field, p.kind) for p in problems.found] == [("hvac_state", "unknown value")]
    check_isolated(wwn_home(WWN), wwn_home(clean), home, WWN_THERMOSTATS[0], WWN_ALARM, CoAlarm)


# --- Nest web -------------------------------------------------------------------------------

NEST_WEB_SERIAL = "#DEVICE 2 SERIAL NUMBER#"
NEST_WEB_PROTECT = "p1"
NEST_WEB_KEY_FIELDS = {
    "shared": ["target_temperature_type", "current_temperature", "hvac_heater_state", "can_cool"],
    "device": ["eco", "current_humidity", "temperature_lock", "fan_timer_timeout"],
}


def nest_web_buckets() -> dict[str, Any]:
    device = load("nest_web/seed-v1-subscribe-response-device.json")["payload"]
    shared = load("nest_web/seed-v1-subscribe-response-shared.json")["payload"]
    return {
        "structure.s1": {
            "name": "Home",
            "away": False,
            "swarm": [f"device.{NEST_WEB_SERIAL}", f"topaz.{NEST_WEB_PROTECT}"],
        },
        f"device.{NEST_WEB_SERIAL}": device,
        f"shared.{NEST_WEB_SERIAL}": shared,
        f"topaz.{NEST_WEB_PROTECT}": {"description": "Hall", "co_status": 0, "smoke_status": 0},
    }


def nest_web_home(buckets: dict[str, Any], previous: Home | None = None) -> Home:
    return nest_web_normalize(buckets, ACCOUNT, now=AT, previous=previous)[0]


@PROPERTY
@given(data=st.data(), value=ODD_VALUES)
def test_nest_web_an_odd_field_costs_only_its_attribute(data: st.DataObject, value: Any) -> None:
    baseline = nest_web_buckets()
    bucket = data.draw(st.sampled_from([f"device.{NEST_WEB_SERIAL}", f"shared.{NEST_WEB_SERIAL}"]))
    key_fields = NEST_WEB_KEY_FIELDS[bucket.partition(".")[0]]
    field = data.draw(pick(key_fields, [*sorted(baseline[bucket]), "brand_new_field"]))
    clean = copy.deepcopy(baseline)
    clean[f"topaz.{NEST_WEB_PROTECT}"]["co_status"] = 3
    odd = copy.deepcopy(clean)
    odd[bucket][field] = value
    first = nest_web_home(baseline)
    check_isolated(
        first,
        nest_web_home(clean, first),
        nest_web_home(odd, first),
        NEST_WEB_SERIAL,
        NEST_WEB_PROTECT,
        CoAlarm,
    )


# --- Google SDM -----------------------------------------------------------------------------

SDM_DEVICES = load("sdm/openhab-list-devices-response.json")["devices"]
SDM_THERMOSTAT = next(d for d in SDM_DEVICES if d["type"].endswith("THERMOSTAT"))
SDM_TWIN = {**copy.deepcopy(SDM_THERMOSTAT), "name": SDM_THERMOSTAT["name"] + "-twin"}
SDM_ODD_ID = sdm.short_id(SDM_THERMOSTAT["name"])
SDM_OTHER_ID = sdm.short_id(SDM_TWIN["name"])
TEMPERATURE = sdm.TRAIT + "Temperature"
SDM_KEY_FIELDS = [
    (sdm.TRAIT + "ThermostatMode", "mode"),
    (sdm.TRAIT + "ThermostatHvac", "status"),
    (TEMPERATURE, "ambientTemperatureCelsius"),
    (sdm.TRAIT + "Humidity", "ambientHumidityPercent"),
    (sdm.TRAIT + "Connectivity", "status"),
]


def sdm_home(resources: list[dict[str, Any]]) -> Home:
    records = [DeviceRecord.from_resource(r, AT) for r in resources]
    structures = [sdm.structure({"name": "enterprises/p/structures/s1"})]
    return sdm.home(ACCOUNT, structures, records)


@PROPERTY
@given(data=st.data(), value=ODD_VALUES)
def test_sdm_an_odd_field_costs_only_its_attribute(data: st.DataObject, value: Any) -> None:
    baseline = [copy.deepcopy(SDM_THERMOSTAT), copy.deepcopy(SDM_TWIN)]
    traits = baseline[0]["traits"]
    trait, field = data.draw(
        pick(SDM_KEY_FIELDS, [(t, f) for t in sorted(traits) for f in [*traits[t], "brandNew"]])
    )
    clean = copy.deepcopy(baseline)
    ambient = clean[1]["traits"][TEMPERATURE]["ambientTemperatureCelsius"]
    clean[1]["traits"][TEMPERATURE]["ambientTemperatureCelsius"] = ambient + 3.5
    odd = copy.deepcopy(clean)
    odd[0]["traits"][trait][field] = value
    check_isolated(
        sdm_home(baseline),
        sdm_home(clean),
        sdm_home(odd),
        SDM_ODD_ID,
        SDM_OTHER_ID,
        TemperatureChanged,
    )


# --- Netatmo --------------------------------------------------------------------------------

NETATMO_DATA = load("netatmo/pyatmo-homesdata.json")["body"]["homes"][0]
NETATMO_STATUS = load("netatmo/pyatmo-homestatus_91763b24c43d3e344f424e8b.json")["body"]["home"]
NETATMO_CO = "co-alarm-1"
NETATMO_KEY_FIELDS = [
    "therm_setpoint_mode",
    "therm_measured_temperature",
    "therm_setpoint_temperature",
    "heating_power_request",
    "reachable",
]


def netatmo_rooms() -> tuple[str, str]:
    """Two rooms with a thermostat and a status (the odd one, the other one)."""
    baseline = netatmo_home(NETATMO_DATA, NETATMO_STATUS, {})
    heated = sorted(
        r["id"]
        for r in NETATMO_STATUS["rooms"]
        if r["id"] in baseline.devices and "therm_measured_temperature" in r
    )
    return heated[0], heated[1]


def netatmo_home(
    data: dict[str, Any], status: dict[str, Any], alarms: dict[str, AlarmStates]
) -> Home:
    with_co = {**data, "modules": [*data["modules"], {"id": NETATMO_CO, "type": "NCO"}]}
    return netatmo_normalize([HomeReading(with_co, status)], ACCOUNT, alarms, Problems())


NETATMO_ODD_ROOM, NETATMO_OTHER_ROOM = netatmo_rooms()


def netatmo_room(status: dict[str, Any], room_id: str) -> dict[str, Any]:
    room: dict[str, Any] = next(r for r in status["rooms"] if r["id"] == room_id)
    return room


@PROPERTY
@given(data=st.data(), value=ODD_VALUES)
def test_netatmo_an_odd_field_costs_only_its_attribute(data: st.DataObject, value: Any) -> None:
    room = netatmo_room(NETATMO_STATUS, NETATMO_ODD_ROOM)
    field = data.draw(pick(NETATMO_KEY_FIELDS, sorted(k for k in room if k != "id")))
    clean = copy.deepcopy(NETATMO_STATUS)
    netatmo_room(clean, NETATMO_OTHER_ROOM)["therm_measured_temperature"] += 2.5
    odd = copy.deepcopy(clean)
    netatmo_room(odd, NETATMO_ODD_ROOM)[field] = value
    emergency = {NETATMO_CO: AlarmStates(co=AlarmState.EMERGENCY)}
    baseline = netatmo_home(NETATMO_DATA, NETATMO_STATUS, {})
    clean_home = netatmo_home(NETATMO_DATA, clean, emergency)
    odd_home = netatmo_home(NETATMO_DATA, odd, emergency)
    check_isolated(
        baseline,
        clean_home,
        odd_home,
        NETATMO_ODD_ROOM,
        NETATMO_OTHER_ROOM,
        TemperatureChanged,
        also=(NETATMO_CO,),
    )
    # the CO alarm in the same round arrives too
    assert signature(events_between(baseline, odd_home), NETATMO_CO) == signature(
        events_between(baseline, clean_home), NETATMO_CO
    )
    assert any(isinstance(e, CoAlarm) for e in events_between(baseline, odd_home))


def test_netatmo_one_unknown_room_mode_does_not_freeze_the_home() -> None:
    odd = copy.deepcopy(NETATMO_STATUS)
    netatmo_room(odd, NETATMO_ODD_ROOM)["therm_setpoint_mode"] = "eco-boost"
    home = netatmo_home(NETATMO_DATA, odd, {})
    assert home.devices[NETATMO_ODD_ROOM].mode is None  # type: ignore[attr-defined]
    assert home.devices[NETATMO_OTHER_ROOM].mode is not None  # type: ignore[attr-defined]
