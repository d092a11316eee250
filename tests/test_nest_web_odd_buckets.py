"""One bucket object roost cannot read (a revision or timestamp that is not an integer, a
value that is not an object, a key without a type) costs only that bucket: it is logged
and counted, and the other buckets of the same reply, a Protect's CO emergency among them,
are applied. Before the fix the whole reply was refused; with the odd bucket in every
app_launch too, the account never came up and the emergency never arrived (an audit of
hostile input found it). Against the Nest web simulator over loopback."""

from __future__ import annotations

from typing import Any

import pytest

from roost.core.events import ConnectionState
from roost.core.model import AlarmState
from tests.test_nest_web_provider import ALARM, connected, running

pytestmark = pytest.mark.anyio

ODD_OBJECTS: dict[str, dict[str, Any]] = {
    "revision a string": {"object_key": "kryptonite.k1", "object_revision": "-7",
                          "object_timestamp": 0, "value": {"battery_level": 80}},
    "timestamp a float": {"object_key": "kryptonite.k1", "object_revision": 3,
                          "object_timestamp": 1.7e12, "value": {}},
    "value a list": {"object_key": "kryptonite.k1", "object_revision": 3, "value": [1]},
    "key without a type": {"object_key": "k1", "object_revision": 3, "value": {}},
    "not an object": ["kryptonite.k1"],
}  # fmt: skip


@pytest.mark.parametrize("odd", list(ODD_OBJECTS), ids=list(ODD_OBJECTS))
async def test_an_odd_bucket_costs_only_itself(odd: str) -> None:
    async with running() as r:
        await connected(r)
        r.sim.send_odd_object(ODD_OBJECTS[odd])  # in every reply from now on, app_launch too
        r.sim.home.set_co(ALARM, "emergency")
        await r.sink.wait_for(lambda: r.sink.device(ALARM).co is AlarmState.EMERGENCY)
        assert r.provider.stats.malformed >= 1  # counted (and logged)
        assert ConnectionState.RECOVERING not in r.sink.states
