"""A Works with Nest client nobody here wrote (python-nest 4.x) against our WWN simulator.

python-nest is what Home Assistant's old `nest` integration used. If it can stream the
document, read structures, thermostats and alarms, and make the writes it knows (target in
the display scale, mode, away, temperature scale, ETA), the simulator speaks WWN as the real
clients understood it, not only as roost does. python-nest is synchronous (requests plus a
reader thread), so each call runs in a worker thread while the simulator serves on the loop.
Its base URL is a module constant; pointing it at the simulator is the one change it needs.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import anyio
import nest.nest as nest_module
import pytest

from roost.simulator import nest_wwn
from roost.simulator.home import SimHome

pytestmark = [
    pytest.mark.anyio,
    # python-nest 4.2 starts its reader thread with the deprecated Thread.setDaemon
    pytest.mark.filterwarnings("ignore:setDaemon\\(\\) is deprecated:DeprecationWarning"),
    # its reader thread dies with ChunkedEncodingError when the simulator shuts down
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]

TOKEN = "c.python-nest-token"
LIVING = "thermostat-living-room"
HOME = "structure-home"


async def _call(fn: Callable[[], Any]) -> Any:
    return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    async with nest_wwn.serve(SimHome.demo(), token=TOKEN) as sim:
        monkeypatch.setattr(nest_module, "API_URL", sim.url)
        napi = nest_module.Nest(access_token=TOKEN)
        yield napi, sim
    reader = napi._event_thread  # ends when the simulator closes the stream
    if reader is not None:
        await _call(lambda: reader.join(5))
    napi._session.close()


def _living(napi: Any) -> Any:
    return next(t for t in napi.thermostats if t.serial == LIVING)


async def test_python_nest_reads_the_streamed_home(client: Any) -> None:
    napi, _ = client
    structures = await _call(lambda: napi.structures)
    assert [s.name for s in structures] == ["Home"]
    structure = structures[0]
    assert await _call(lambda: structure.away) == "home"
    thermostats = await _call(lambda: napi.thermostats)
    assert {t.name for t in thermostats} >= {"Living Room Thermostat"} or len(thermostats) == 2
    living = _living(napi)
    assert await _call(lambda: living.temperature_scale) == "C"
    assert await _call(lambda: living.mode) == "heat"
    assert await _call(lambda: living.target) == 20.0
    alarms = await _call(lambda: napi.smoke_co_alarms)
    assert [a.co_status for a in alarms] == ["ok"]


async def test_python_nest_writes_land_in_the_simulated_home(client: Any) -> None:
    napi, sim = client
    living = await _call(lambda: _living(napi))
    await _call(lambda: setattr(living, "target", 21.3))  # python-nest rounds to 21.5
    assert sim.writes[-1] == (f"/devices/thermostats/{LIVING}", {"target_temperature_c": 21.5})
    assert sim.home.thermostat(LIVING).target_c == 21.5

    await _call(lambda: setattr(living, "temperature_scale", "f"))
    assert sim.home.thermostat(LIVING).scale == "F"
    with anyio.fail_after(5):  # python-nest reads the scale from its streamed copy
        while await _call(lambda: living.temperature_scale) != "F":
            await anyio.sleep(0.05)
    await _call(lambda: setattr(living, "target", 68))
    assert sim.writes[-1] == (f"/devices/thermostats/{LIVING}", {"target_temperature_f": 68})
    assert sim.home.thermostat(LIVING).target_c == 20.0

    structure = (await _call(lambda: napi.structures))[0]
    await _call(lambda: setattr(structure, "away", "away"))
    assert sim.home.structures[HOME].away is True

    begin = datetime.datetime(2026, 12, 1, 17, 30, tzinfo=datetime.UTC)
    await _call(lambda: structure.set_eta("trip-1", begin))
    assert sim.home.structures[HOME].arrival_begin == begin.isoformat()
    await _call(lambda: structure.cancel_eta("trip-1"))
    assert sim.home.structures[HOME].arrival_begin is None
