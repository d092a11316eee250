"""Testing rules: a simulated home, a virtual clock, and what the rules did.

    import pytest
    from roost.testing import simulate

    HOME = {"structure": "House", "thermostats": {"Den": {"mode": "heat", "ambient_c": 20}}}

    @pytest.mark.anyio
    async def test_eco_when_away():
        async with simulate("rules/away_eco.py", HOME) as home:
            await home.set("House", presence="away")
            await home.advance("10m")                 # virtual time: no sleeping
            assert home.actions() == ["Den: eco on"]

The home description (`build_home`): `structure` (name), `presence` ("home"/"away"),
`time_zone`, and per kind a table of devices by name with their attributes (see
docs/reference.md): `thermostats` ({"mode", "ambient_c", "heat_setpoint_c", …}),
`alarms` ({"co", "smoke", …}), `cameras`, `doorbells`. Ids are the names in lower case
with dashes; a device's room defaults to its name.

A helper per event kind: `leave`/`arrive` (presence), `co`/`smoke` (alarms),
`temperature`, `offline`/`online` (connectivity), `motion`, `person`, `sound`, `chime`;
`set(name, **attributes)` changes anything else and `emit(event)` sends any event.
`simulate(..., location=(lat, lon))` places the home for sun triggers, `memory=` keeps
`home.memory` in a real store across two runs.

The rules run in the real engine against the real state and guards; commands are not
sent anywhere, but by default the simulated devices take them on (the echo carries its
causation, as a real cloud's would). Installed as a pytest plugin, it also offers the
`simulate_home` fixture (the same `simulate`).

The daemon's limits apply: a run that blocks the loop past the block budget (0.5 s of
`time.sleep`, a busy loop, a blocking read), sends more than 50 commands, or runs its
timeout in real time is stopped, and the test fails with `RunawayRule` instead of hanging.
"""

from __future__ import annotations

import typing

from roost.testing.sandbox import RunawayRule, SentCommand, SimulatedHome, build_home, simulate

if typing.TYPE_CHECKING:
    from roost_pytest import simulate_home

__all__ = [
    "RunawayRule",
    "SentCommand",
    "SimulatedHome",
    "build_home",
    "simulate",
    "simulate_home",
]


def __getattr__(name: str) -> typing.Any:
    """`simulate_home` (the pytest fixture) imports pytest: only when asked for, so the rest
    of `roost.testing` (and `roost demo`, which runs a simulated installation) works in an
    installation without pytest."""
    if name == "simulate_home":
        from roost_pytest import simulate_home

        globals()[name] = simulate_home
        return simulate_home
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
