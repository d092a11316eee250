"""A device whose id holds a lone surrogate (JSON can carry one, "\\ud800", in an object
key) neither ends the daemon nor costs the alarms: its change identities are stored and
read back exactly. Before the fix the store's write of those identities raised
UnicodeEncodeError, the persister's task ended `roost run`, and the next start met the
same device: no CO push ever left (an audit of hostile input found it)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from roost.store.sqlite import Store
from tests.faults.harness import fault_bed, wait_for

pytestmark = pytest.mark.anyio

ODD = "th\ud800x"


async def test_change_identities_with_a_lone_surrogate_are_kept_exactly(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        store.reserve_versions("acct", [(f"{ODD}.ambient_c", 3, 21.5), ("plain.mode", 1, "heat")])
        await store.flush()
        assert await store.versions("acct") == {
            f"{ODD}.ambient_c": (3, 21.5),
            "plain.mode": (1, "heat"),
        }
        store.reserve_versions("acct", [(f"{ODD}.ambient_c", 4, 22.0)])  # the same row again
        await store.flush()
        assert (await store.versions("acct"))[f"{ODD}.ambient_c"] == (4, 22.0)
    finally:
        store.close()


async def test_a_device_id_with_a_lone_surrogate_costs_no_alarm(tmp_path: Path) -> None:
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        device = {"device_id": ODD, "name": "Odd", "structure_id": "structure-home",
                  "hvac_mode": "heat", "ambient_temperature_c": 20.0}  # fmt: skip
        bed.cloud.send_odd_value(f"devices/thermostats/{ODD}", device)
        bed.home.set_ambient("thermostat-living-room", 25.0)  # a put that carries it
        await anyio.sleep(0.5)
        bed.cloud.send_odd_value(f"devices/thermostats/{ODD}", {**device, "hvac_mode": "off"})
        bed.home.set_co("alarm-hallway", "emergency")
        await wait_for(lambda: bed.titles()["CO emergency in the Hallway"] == 1, timeout_s=15)
        assert bed.daemon.process is not None
        assert bed.daemon.process.returncode is None
