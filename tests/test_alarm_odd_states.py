"""An alarm state the vendor sends oddly (other casing, an unknown value, a wrong type)
fails open, through a real `roost run` against each vendor's simulated cloud: a casing is
read as the state it spells, and a value roost cannot read still reaches a person as an
urgent push (the guards already count it as an alarm). SDM has no smoke/CO devices."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.alarm_bed import ALARM, HOME, vendor_bed

pytestmark = pytest.mark.anyio

EMERGENCY = "CO emergency"
UNREADABLE = "cannot read"
WWN_CO = f"devices/smoke_co_alarms/{ALARM}/co_alarm_state"


async def test_wwn_alarm_states_in_odd_forms_reach_the_sink(tmp_path: Path) -> None:
    async with vendor_bed(tmp_path, "nest_wwn") as bed:
        await bed.start()
        for raw, expected in [('"EMERGENCY"', EMERGENCY), ('"alarm"', UNREADABLE)]:
            before = bed.count(expected)
            bed.cloud.serve_raw(WWN_CO, raw)
            await bed.push(expected, before)
            bed.cloud.serve_raw(WWN_CO, None)  # back to "ok"
            await anyio.sleep(1.0)
        # roost pushed the unreadable state itself, and no rule reacts to its end: roost
        # says the alarm reads ok again.
        await bed.push(f"CO cleared at alarm '{ALARM}'", 0)


async def test_nest_web_alarm_levels_in_odd_forms_reach_the_sink(tmp_path: Path) -> None:
    async with vendor_bed(tmp_path, "nest_web") as bed:
        await bed.start()
        bed.cloud.send_odd_value(f"topaz.{ALARM}", "co_status", "3")  # a level as text
        bed.home.set_smoke(ALARM, "warning")  # a change to carry it
        await bed.push(UNREADABLE, 0)
        await bed.push("Smoke warning", 0)


async def test_netatmo_alarm_events_in_odd_forms_reach_the_sink(tmp_path: Path) -> None:
    async with vendor_bed(tmp_path, "netatmo") as bed:
        await bed.start()
        await anyio.sleep(1.0)  # the first read of the timeline is a baseline
        module = f"{ALARM}-co"
        for kind, sub_type in [("co_detected", "2"), ("CO_DETECTED", 7)]:
            before = bed.count(EMERGENCY)
            bed.cloud.record(
                HOME,
                {"type": kind, "module_id": module, "sub_type": sub_type, "message": "CO"},
                "NCO-co_detected",
            )
            await bed.push(EMERGENCY, before)
            cleared = bed.count("CO cleared")
            bed.cloud.record(
                HOME,
                {"type": "co_detected", "module_id": module, "sub_type": 0, "message": "ok"},
                "NCO-co_detected",
            )
            await bed.push("CO cleared", cleared)
