"""A structure in `structures.list` that roost cannot read (no name, not an object) is
skipped and counted; the home's other structures and every device are listed, and the
stream of changes starts. Before the fix one such structure failed the whole list, at
every reconnect, so the account never came up (an audit of hostile input found it).
Against the SDM simulator over loopback."""

from __future__ import annotations

import anyio
import pytest

from roost.core.events import ConnectionState
from tests.test_sdm_provider import LOUNGE, VILLA, rig

pytestmark = pytest.mark.anyio

ODD = {"no name": {"traits": {}}, "a number as name": {"name": 7}, "not an object": "villa"}


@pytest.mark.parametrize("odd", list(ODD), ids=list(ODD))
async def test_an_odd_structure_costs_only_itself(odd: str) -> None:
    async with rig(start=False) as r, anyio.create_task_group() as tg:
        r.sim.odd_structures.append(ODD[odd])
        tg.start_soon(r.provider.run, r.sink)
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        assert set(r.sink.snapshots[0].structures) == {VILLA}
        assert LOUNGE in r.sink.snapshots[0].devices
        r.home.set_ambient(LOUNGE, 28.0)
        await r.sink.wait_for(lambda: 28.0 in r.sink.changes(LOUNGE, "ambient_c"))
        assert r.provider.stats.malformed >= 1
        assert ConnectionState.RECOVERING not in r.sink.states
        tg.cancel_scope.cancel()
