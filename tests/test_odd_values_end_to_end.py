"""A CO emergency beside an odd value on another device reaches the push sink, through a
real `roost run` and the simulated cloud over loopback (issue 13 "done when"); the account
then shows "degraded" with the reason in `roost status` and in the metrics."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from tests.faults.harness import fault_bed, wait_for

LIVING, BEDROOM, ALARM = "thermostat-living-room", "thermostat-bedroom", "alarm-hallway"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def status(config: Path) -> dict[str, object]:
    answer = subprocess.run(
        [sys.executable, "-m", "roost", "status", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    parsed: dict[str, object] = json.loads(answer.stdout)
    return parsed


@pytest.mark.anyio
async def test_wwn_co_emergency_beside_odd_values_reaches_the_sink(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        config = bed.daemon.config
        with config.open("a") as extra:  # the metrics endpoint, on a free loopback port
            extra.write(f'\n[metrics]\nlisten = "127.0.0.1:{free_port()}"\n')
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        # The put from the issue: an hvac_state roost has never seen on one thermostat, an
        # infinite ambient temperature on the other, and the CO emergency on the Protect.
        bed.cloud.send_odd_value(f"devices/thermostats/{LIVING}/hvac_state", "heating-stage2")
        bed.cloud.send_odd_value(f"devices/thermostats/{BEDROOM}/ambient_temperature_c", math.inf)
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: any("CO emergency" in t for t in bed.titles()), timeout_s=30)
        log = bed.daemon.log()
        assert "malformed_put" not in log  # the put was not dropped
        assert log.count('"field": "hvac_state"') == 1  # logged once, not once per put
        assert log.count('"field": "ambient_temperature_c"') == 1
        account = status(config)["accounts"][0]  # type: ignore[index]
        assert account["state"] == "degraded"
        assert "unreadable field" in account["detail"]
        assert account["unreadable_fields"] == 2
        # the same odd values on later puts are not new problems
        bed.home.set_ambient(LIVING, 21.0)
        await anyio.sleep(1.0)
        assert status(config)["accounts"][0]["unreadable_fields_total"] == 2  # type: ignore[index]
        assert bed.daemon.log().count('"field": "hvac_state"') == 1
        metrics = await _metrics(bed.daemon.log())
        assert 'roost_account_degraded{account="home"} 1' in metrics
        assert 'roost_payload_problems_total{account="home"} 2' in metrics


async def _metrics(log: str) -> str:
    line = next(ln for ln in log.splitlines() if "metrics endpoint ready" in ln)
    url = json.loads(line)["url"]
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).text
