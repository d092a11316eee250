"""Actions (targets, setpoints, fan, notify templates, delay, running another rule) and
isolation (a rule that raises, hangs or blocks the loop is named; the others go on)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio


async def test_toml_actions_address_devices_every_way(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.toml",
        """
        [[rule]]
        name = "evening"
        on = { event = "presence", to = "home" }
        do = [
            { action = "thermostat.set_heat", target = { name = "Den" }, celsius = 21 },
            { action = "thermostat.set_mode", target = { room = "Bedroom" }, mode = "heat-cool" },
            { action = "thermostat.set_range", target = { id = "bedroom" }, heat = 18, cool = 24 },
            { action = "thermostat.set_fan_timer", target = { name = "Den" }, minutes = 15 },
            { action = "delay", for = "1m" },
            { action = "thermostat.set_eco", target = { structure = "House" }, on = true },
            { action = "rule.run", rule = "announce" },
        ]

        [[rule]]
        name = "announce"
        on = { event = "co", to = "emergency" }

        [[rule.do]]
        action = "notify"
        title = "{rule}: {structure.name} is {structure.presence}"
        body = "{event.name} at {device.room}"
        tags = ["family"]
        priority = "high"
        """,
    )
    house = {**HOME, "presence": "away"}
    house["thermostats"] = {**HOME["thermostats"], "Bedroom": {"mode": "heat", "can_cool": True}}
    async with simulate(tmp_path, house) as home:
        await home.set("House", presence="home")
        assert home.actions() == [
            "Den: heat to 21 °C",
            "Bedroom: set mode heat-cool",
            "Bedroom: range 18–24 °C",
            "Den: fan for 15 min",
        ]
        await home.advance("1m")
        assert sorted(home.actions()[4:]) == ["Bedroom: eco on", "Den: eco on"]
        (note,) = home.notifications
        assert (note.title, note.body) == ("announce: House is home", "presence at None")
        assert (note.tags, note.priority) == (("family",), "high")
        steps = [(s.what, s.outcome) for s in home.traces("evening")[-1].steps]
        assert ("run rule 'announce'", "started") in steps
        assert ("heat to 21 °C → Den", "dry_run") in steps


async def test_a_refused_command_is_in_the_trace_with_the_guard(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("motion"))
        async def roast(event, home):
            outcome = await home.device("Den").set_heat(35)
            await home.notify(f"{outcome.outcome}")
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.motion("Front Door")
        assert home.titles() == ["refused"]
        step = home.traces("roast")[-1].steps[0]
        assert step.outcome == "refused"
        assert step.detail.startswith("device_range")


async def test_a_rule_that_blocks_the_loop_is_named_and_others_still_run(
    tmp_path: Path,
) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        import time

        import anyio
        from roost import rule, when

        @rule(on=when("motion"))
        async def sleepy(event, home):
            time.sleep(0.3)

        @rule(on=when("motion"))
        async def raises(event, home):
            raise RuntimeError("bug")

        @rule(on=when("motion"), timeout="1s")
        async def hangs(event, home):
            await anyio.Event().wait()  # waits for ever: a hang, cut by the timeout

        @rule(on=when("motion"))
        async def polite(event, home):
            took = await home.run_sync(lambda: sum(range(1000)))
            await home.notify(f"still here {took}")
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        started = time.monotonic()
        await home.motion("Front Door")
        assert time.monotonic() - started < 5
        await home.advance("2s")
        results = {r: home.traces(r)[-1] for r in ("sleepy", "raises", "hangs", "polite")}
        assert results["sleepy"].result == "ran"
        assert results["sleepy"].steps[-1].what == "blocked the event loop"
        assert home.engine.stats["sleepy"].blocked_loop == 1
        assert (results["raises"].result, results["raises"].reason) == (
            "failed",
            "RuntimeError: bug",
        )
        assert results["hangs"].result == "timed_out"
        with anyio.fail_after(5):  # run_sync finishes in a real worker thread
            while not home.titles():
                await anyio.sleep(0.01)
        assert home.titles() == ["still here 499500"]


async def test_a_condition_and_the_body_it_admits_share_one_home(tmp_path: Path) -> None:
    """The home a condition is checked with goes on into the body (one per run), and a
    run's deadline, made only when it first waits, still counts from the run's start."""
    rule_file(
        tmp_path,
        "r.py",
        """
        import anyio
        from roost import rule, when

        checked = {}

        def remember(event, home):
            checked[home.rule] = home
            return True

        @rule(on=when("motion"), condition=remember)
        async def same(event, home):
            await home.notify("same" if checked["same"] is home else "another")

        @rule(on=when("motion"), condition=remember, timeout="2s")
        async def slow(event, home):
            await home.delay("1s")  # the timeout grows by the delay: 3 s in all
            await anyio.Event().wait()
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.motion("Front Door")
        assert home.titles() == ["same"]
        await home.advance("2.9s")
        assert home.traces("slow")[-1].result == "running"
        await home.advance("0.2s")
        trace = home.traces("slow")[-1]
        assert (trace.result, trace.reason) == ("timed_out", "timed out after 2s")
