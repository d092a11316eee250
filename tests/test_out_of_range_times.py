"""A time a vendor writes that Python's datetime cannot hold (an offset pushing year 1 or
9999 over the edge) is an unreadable value, not a crash: the CO emergency in the same put
still reaches the push sink, and an SDM message with such a time is skipped and counted
while its neighbours in the pull are handled (an audit of hostile input found each)."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from roost.core.events import CoAlarm, TemperatureChanged
from roost.providers.nest_wwn.normalize import Normalizer
from roost.providers.readers import Problems
from roost.providers.sdm import messages
from roost.providers.sdm.messages import PayloadError
from tests.faults.harness import fault_bed, wait_for
from tests.test_normalize_properties import (
    ACCOUNT,
    SDM_ODD_ID,
    SDM_OTHER_ID,
    SDM_THERMOSTAT,
    SDM_TWIN,
    TEMPERATURE,
    WWN,
    WWN_ALARM,
    WWN_THERMOSTATS,
    check_isolated,
    sdm_home,
    wwn_home,
)

# Valid RFC 3339, but the instant is before 0001-01-01 or after 9999-12-31 in UTC.
BEYOND_DATETIME = ["9999-12-31T23:59:59-10:00", "0001-01-01T00:00:00+14:00"]
LIVING, ALARM = "thermostat-living-room", "alarm-hallway"


@pytest.mark.parametrize("when", BEYOND_DATETIME)
def test_wwn_a_fan_timer_beyond_datetime_costs_only_its_attribute(when: str) -> None:
    clean = copy.deepcopy(WWN)
    clean["devices"]["smoke_co_alarms"][WWN_ALARM]["co_alarm_state"] = "emergency"
    odd = copy.deepcopy(clean)
    thermostat = odd["devices"]["thermostats"][WWN_THERMOSTATS[0]]
    thermostat |= {"fan_timer_active": True, "fan_timer_timeout": when}
    home = Normalizer(ACCOUNT)(odd, Problems())
    assert home.devices[WWN_THERMOSTATS[0]].fan_timer_until is None  # type: ignore[attr-defined]
    check_isolated(wwn_home(WWN), wwn_home(clean), home, WWN_THERMOSTATS[0], WWN_ALARM, CoAlarm)


@pytest.mark.parametrize("when", BEYOND_DATETIME)
def test_sdm_a_fan_timer_beyond_datetime_costs_only_its_attribute(when: str) -> None:
    baseline = [copy.deepcopy(SDM_THERMOSTAT), copy.deepcopy(SDM_TWIN)]
    clean = copy.deepcopy(baseline)
    clean[1]["traits"][TEMPERATURE]["ambientTemperatureCelsius"] += 3.5
    odd = copy.deepcopy(clean)
    odd[0]["traits"]["sdm.devices.traits.Fan"] = {"timerMode": "ON", "timerTimeout": when}
    check_isolated(
        sdm_home(baseline), sdm_home(clean), sdm_home(odd), SDM_ODD_ID, SDM_OTHER_ID,
        TemperatureChanged,
    )  # fmt: skip


def _delivery(ack: str, event: dict[str, Any], publish_time: str) -> dict[str, Any]:
    data = base64.b64encode(json.dumps(event).encode()).decode()
    message = {"data": data, "messageId": ack, "publishTime": publish_time}
    return {"ackId": ack, "message": message}


@pytest.mark.parametrize("when", BEYOND_DATETIME)
def test_sdm_a_message_timed_beyond_datetime_is_skipped_and_its_neighbours_kept(
    when: str,
) -> None:
    good = {"eventId": "good", "timestamp": "2026-12-01T08:00:00Z",
            "resourceUpdate": {"name": "enterprises/p/devices/d1", "traits": {}}}  # fmt: skip
    bad = {**good, "eventId": "bad", "timestamp": when}
    pull = {"receivedMessages": [_delivery("a1", bad, when), _delivery("a2", good, when)]}
    # both are acknowledged, neither breaks the pull
    deliveries = messages.parse_pull(pull).deliveries
    assert [d.ack_id for d in deliveries] == ["a1", "a2"]
    assert all(d.publish_time is None for d in deliveries)
    with pytest.raises(PayloadError, match="no usable timestamp"):  # skipped and counted
        messages.parse_event(deliveries[0].data)
    assert messages.parse_event(deliveries[1].data).event_id == "good"


@pytest.mark.anyio
async def test_a_co_emergency_beside_a_fan_timer_beyond_datetime_reaches_the_sink(
    tmp_path: Path,
) -> None:
    """Through `roost run`: before the fix the put crashed the normalizer, the stream
    reconnected, the next put crashed again, and the emergency never left."""
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        path = f"devices/thermostats/{LIVING}"
        bed.cloud.send_odd_value(f"{path}/fan_timer_active", True)
        bed.cloud.send_odd_value(f"{path}/fan_timer_timeout", BEYOND_DATETIME[0])
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: bed.titles()["CO emergency in the Hallway"] == 1, timeout_s=15)
        assert "provider.crashed" not in bed.daemon.log()
