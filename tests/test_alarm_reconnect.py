"""An alarm raised while an account's stream is down reaches the sink exactly once when
the stream comes back (the catch-up picture carries it), through a real `roost run`; and a
clear and a second raise right after it are both pushed. (A clear and a raise within one
cloud update are one state, emergency, to roost: the cloud coalesces them.)"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.alarm_bed import ALARM, vendor_bed

pytestmark = pytest.mark.anyio

EMERGENCY = "CO emergency"


def drop(vendor: str, cloud: object) -> None:
    if vendor == "nest_wwn":
        cloud.drop_streams()  # type: ignore[attr-defined]
    else:
        cloud.drop_subscriptions()  # type: ignore[attr-defined]


@pytest.mark.parametrize("vendor", ["nest_wwn", "nest_web"])
async def test_an_alarm_raised_during_a_reconnect_is_pushed_once(
    tmp_path: Path, vendor: str
) -> None:
    async with vendor_bed(tmp_path, vendor) as bed:
        await bed.start()
        drop(vendor, bed.cloud)
        bed.home.set_co(ALARM, "emergency")
        await bed.push(EMERGENCY, 0)
        await anyio.sleep(1.5)  # a second push, if any, arrives now
        assert bed.count(EMERGENCY) == 1, bed.titles()
        # cleared and raised again right after: the second raise is a new alarm
        bed.home.set_co(ALARM, "ok")
        await bed.push("CO cleared", 0)
        bed.home.set_co(ALARM, "emergency")
        await bed.push(EMERGENCY, 1)
