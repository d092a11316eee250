"""Rules remember: `home.memory` survives a restart (in the SQLite store), and a snapshot
of the thermostats is put back after away and after a CO alarm, through the guards."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from roost.core.events import Outcome
from roost.store.sqlite import Store, StoreMemory
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

AWAY_TOML = """
[[rule]]
name = "eco when away"
on = { event = "presence", to = "away" }
do = [
    { action = "snapshot", name = "before away" },
    { action = "thermostat.set_eco", target = "structure" },
]

[[rule]]
name = "back as it was"
on = { event = "presence", to = "home" }
do = [{ action = "restore", name = "before away" }]
"""


def settings(home: object) -> dict[str, tuple[str, float | None]]:
    found = {}
    for name in ("Den", "Bedroom"):
        t = home.find(name)  # type: ignore[attr-defined]
        found[name] = (str(t.mode), t.heat_setpoint_c)
    return found


async def test_restore_after_away_puts_modes_and_setpoints_back(tmp_path: Path) -> None:
    rule_file(tmp_path, "away.toml", AWAY_TOML)
    async with simulate(tmp_path, HOME) as home:
        await home.set("Den", heat_setpoint_c=21.5)
        before = settings(home)
        await home.set("House", presence="away")
        assert settings(home) == {"Den": ("eco", 21.5), "Bedroom": ("eco", 19.0)}
        await home.advance("8h")
        await home.set("House", presence="home")
        assert settings(home) == before == {"Den": ("heat", 21.5), "Bedroom": ("heat", 19.0)}
        assert home.actions()[-4:] == [
            "Den: set mode heat",
            "Den: heat to 21.5 °C",
            "Bedroom: set mode heat",
            "Bedroom: heat to 19 °C",
        ]


CO_PYTHON = """
from roost import CoAlarm, Home, rule, when


@rule(on=when("co", to=["warning", "emergency"]))
async def hvac_off_during_co(event: CoAlarm, home: Home) -> None:
    if await home.memory.get("co snapshot taken") is None:
        await home.snapshot("before co")
        await home.memory.set("co snapshot taken", True)
    for thermostat in home.thermostats():
        await thermostat.set_mode("off")


@rule(on=when("co", to="ok"))
async def restore_after_co(event: CoAlarm, home: Home) -> None:
    await home.restore("before co")
    await home.memory.set("co snapshot taken", None)


@rule(on=when("presence", to="home"))
async def restore_too_early(event, home):
    await home.restore("before co")
"""


async def test_restore_after_a_co_alarm_passes_the_guards(tmp_path: Path) -> None:
    rule_file(tmp_path, "co.py", CO_PYTHON)
    async with simulate(tmp_path, HOME) as home:
        await home.set("Hallway", co="warning")
        await home.set("Hallway", co="emergency")  # the snapshot is not taken again
        assert settings(home) == {"Den": ("off", 20.0), "Bedroom": ("off", 19.0)}

        # Someone comes home during the alarm: the restore is refused by the alarm guard.
        await home.set("House", presence="away")
        await home.set("House", presence="home")
        refused = home.actions(Outcome.REFUSED)
        assert refused == ["Den: set mode heat", "Bedroom: set mode heat"]
        assert settings(home) == {"Den": ("off", 20.0), "Bedroom": ("off", 19.0)}

        await home.set("Hallway", co="ok")
        assert settings(home) == {"Den": ("heat", 20.0), "Bedroom": ("heat", 19.0)}


async def test_memory_survives_a_restart_in_the_store(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    rule_file(
        tmp_path / "rules",
        "count.py",
        """
        from roost import rule, when

        @rule(on=when("motion"))
        async def count_visits(event, home):
            seen = await home.memory.get("visits", 0) + 1
            await home.memory.set("visits", seen)
            await home.notify(f"visit {seen}")
        """,
    )
    for expected in (["visit 1", "visit 2"], ["visit 3"]):
        store = Store.open(tmp_path / "state")
        try:
            async with simulate(tmp_path / "rules", HOME, memory=StoreMemory(store)) as home:
                for number in range(1, len(expected) + 1):
                    await home.motion("Front Door")
                    # The store answers from its worker thread, in real time.
                    with anyio.fail_after(10):
                        while len(home.titles()) < number:
                            await anyio.sleep(0.01)
                    await home.advance("1m")
                assert home.titles() == expected
        finally:
            store.close()


async def test_a_missing_snapshot_is_traced_not_guessed(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.toml",
        """
        [[rule]]
        name = "restore nothing"
        on = { event = "presence", to = "home" }
        do = [{ action = "restore", name = "never taken" }]
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.set("House", presence="away")
        await home.set("House", presence="home")
        steps = home.traces("restore nothing")[-1].steps
        assert [(s.what, s.outcome, s.detail) for s in steps] == [
            ("restore 'never taken'", "failed", "no such snapshot")
        ]
        assert home.actions() == []
