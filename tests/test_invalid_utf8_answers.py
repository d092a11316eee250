"""A vendor answer with bytes that are not UTF-8 (a latin-1 "ö" in a room's name) costs
only those characters (U+FFFD), as the WWN stream's reader already had it; the rest of
the answer is read. Before the fix the whole answer was "not JSON": a Netatmo home whose
`homesdata` held one such byte never came up, and its CO emergency never arrived (an
audit of hostile input found it). Against the Netatmo simulator over loopback."""

from __future__ import annotations

import pytest

from roost.core.model import AlarmState
from roost.providers.bounds import parse_json
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from tests.test_netatmo_provider import ALARM, HOME_ID, polling, provider_for

pytestmark = pytest.mark.anyio


def test_a_byte_that_is_not_utf8_becomes_a_replacement_character() -> None:
    assert parse_json(b'{"name": "K\xfcche", "rooms": [1]}') == {
        "name": "K\ufffdche",
        "rooms": [1],
    }


async def test_a_latin1_name_in_homesdata_costs_only_its_characters() -> None:
    home = SimHome.demo()
    async with netatmo.serve(home) as sim:
        sim.raw_answers["homesdata"] = lambda body: body.replace(b'"name": "', b'"name": "\xf6', 1)
        async with polling(sim, provider_for(sim)) as r:
            assert r.sink.snapshots, r.sink.statuses
            assert "\ufffd" in r.sink.latest.structures[HOME_ID].name
            home.set_co(ALARM, "emergency")
            await r.sink.wait_for(lambda: r.sink.co_states() == [AlarmState.EMERGENCY])
