"""An odd entry in Netatmo's event history (`getevents`) costs only itself: a time in
milliseconds, beyond datetime or not a number, a `sub_type` or a clip type that is a list.
Before the fix each one raised inside the poll round, the round was retried from scratch,
met the same entry (never remembered as reported) and raised again, so the account stayed
down: the CO emergency and the temperature change that followed never arrived (an audit of
hostile input found it). So did a module (in `homesdata` and `homestatus`) whose id or
type is not a string. Against the Netatmo simulator over loopback, through the real
provider."""

from __future__ import annotations

from typing import Any

import pytest

from roost.core.events import ConnectionState
from roost.core.model import AlarmState
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from tests.test_netatmo_provider import ALARM, CO, DOORBELL, HOME_ID, LIVING, polling, provider_for

pytestmark = pytest.mark.anyio

MOVEMENT = {"type": "movement", "module_id": DOORBELL, "message": "odd"}
ODD_ENTRIES: dict[str, dict[str, Any]] = {
    "time in milliseconds": {**MOVEMENT, "time": 1_764_576_000_000},
    "time beyond any float": {**MOVEMENT, "time": 10**400},
    "time not a number": {**MOVEMENT, "time": float("nan")},
    "time before 1970": {**MOVEMENT, "time": -(10**12)},
    "sub_type a list": {"type": "smoke", "module_id": f"{ALARM}-smoke", "sub_type": [1]},
    "clip type a list": {"type": "outdoor", "module_id": DOORBELL,
                         "subevents": [{"type": ["human"]}]},
}  # fmt: skip


async def test_odd_history_entries_do_not_stop_the_alarms_after_them() -> None:
    home = SimHome.demo()
    async with netatmo.serve(home) as sim, polling(sim, provider_for(sim)) as r:
        rounds = r.provider.stats.polls
        await r.sink.wait_for(lambda: r.provider.stats.polls > rounds)  # the baseline is read
        for entry in ODD_ENTRIES.values():  # each one alone failed before the fix
            sim.record(HOME_ID, entry, "odd")
        home.set_co(ALARM, "emergency")
        home.set_ambient(LIVING, 16.5)
        await r.sink.wait_for(lambda: r.sink.co_states() == [AlarmState.EMERGENCY])
        await r.sink.wait_for(lambda: r.sink.latest.devices[LIVING].ambient_c == 16.5)  # type: ignore[attr-defined]
        assert r.provider.home is not None
        assert r.provider.home.devices[CO].co is AlarmState.EMERGENCY  # type: ignore[attr-defined]
        rounds = r.provider.stats.polls
        await r.sink.wait_for(lambda: r.provider.stats.polls > rounds + 1)  # and it goes on
        assert ConnectionState.RECOVERING not in r.sink.states, r.sink.statuses


ODD_MODULES = {
    "id a list": {"id": ["x"], "type": "NATherm1"},
    "id a table": {"id": {"a": 1}},
    "type a list": {"id": "camera-odd", "type": ["NACamera"]},
}


async def test_odd_status_modules_do_not_stop_the_alarms() -> None:
    home = SimHome.demo()
    async with netatmo.serve(home) as sim, polling(sim, provider_for(sim)) as r:
        sim.odd_modules.extend(ODD_MODULES.values())  # each one alone failed before the fix
        home.set_co(ALARM, "emergency")
        home.set_ambient(LIVING, 16.5)
        await r.sink.wait_for(lambda: r.sink.co_states() == [AlarmState.EMERGENCY])
        await r.sink.wait_for(lambda: r.sink.latest.devices[LIVING].ambient_c == 16.5)  # type: ignore[attr-defined]
        rounds = r.provider.stats.polls
        await r.sink.wait_for(lambda: r.provider.stats.polls > rounds + 2)  # and it goes on
        assert ConnectionState.RECOVERING not in r.sink.states, r.sink.statuses
