"""Every simulated cloud is a `Front`: one `serve()`, one `fail_next`, the same home
controls over `/_sim/`. Run against all four fronts over loopback HTTP."""

from __future__ import annotations

import httpx
import pytest

from roost.simulator.clouds import DEMO_HOMES, VENDORS
from roost.simulator.faults import DROP
from roost.simulator.front import HOME_CONTROLS, Front
from roost.simulator.home import SimHome

pytestmark = pytest.mark.anyio


def _home(vendor: str) -> SimHome:
    return DEMO_HOMES.get(vendor, SimHome.demo)()


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_every_front_serves_the_shared_controls(vendor: str) -> None:
    home = _home(vendor)
    device = next(iter(home.thermostats))
    async with VENDORS[vendor](home, None) as (cloud, _account):
        assert isinstance(cloud, Front)
        async with httpx.AsyncClient(base_url=cloud.url) as client:
            answer = await client.post("/_sim/ambient", json={"device": device, "c": 23.5})
            assert answer.status_code == 200, answer.text
            state = (await client.get("/_sim/state")).json()
            refused = await client.post("/_sim/ambient", json={"device": device, "c": "warm"})
    assert home.thermostats[device].ambient_c == 23.5
    assert state == home.to_dict()
    assert refused.status_code == 400


@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_fail_next_is_one_api(vendor: str) -> None:
    async with VENDORS[vendor](_home(vendor), None) as (cloud, _account):
        cloud.fail_next("read", 1, DROP)
        with pytest.raises(ValueError, match="no fault kind"):
            cloud.fail_next("nonsense")
        with pytest.raises(ValueError, match="after applying"):
            cloud.fail_next("read", after_apply=True)  # only a write can fail after acting
        async with httpx.AsyncClient(base_url=cloud.url) as client:
            answer = await client.post("/_sim/fail_next", json={"kind": "read", "n": 1})
            assert answer.status_code == 400  # `status` is required over the control socket
            ok = await client.post("/_sim/fail_next", json={"kind": "read", "n": 2, "status": 503})
    assert ok.status_code == 200, ok.text


def test_the_home_controls_are_the_same_for_every_front() -> None:
    from roost.simulator import nest_web, nest_wwn, netatmo, sdm

    for front in (nest_web, nest_wwn, netatmo, sdm):
        controls = front._CONTROLS
        assert all(controls[name] is HOME_CONTROLS[name] for name in HOME_CONTROLS)
