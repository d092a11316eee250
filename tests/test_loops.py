"""Echo and loop protection: a rule's own echo, a ping-pong between two rules cut by the
chain depth, and a rule re-fired by echoes too often; the cut names the rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from roost.engine.engine import LoopLimits
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

PING_PONG = """
from roost import rule, when

@rule(on=when("thermostat_mode", device="Den", to="eco"))
async def ping(event, home):
    await home.device().set_eco(False)

@rule(on=when("thermostat_mode", device="Den", to="heat"))
async def pong(event, home):
    await home.device().set_eco(True)
"""


async def test_a_rule_does_not_retrigger_on_its_own_echo(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("setpoint", device="Den"))
        async def round_up(event, home):
            await home.device().set_heat(round(event.new + 0.5))
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.set("Den", heat_setpoint_c=20.5)
        assert home.actions() == ["Den: heat to 21 °C"]
        echo = home.traces("round_up")[-1]
        assert echo.result == "skipped"
        assert echo.reason == "the event is the echo of this rule's own command"
        assert echo.event is not None
        assert echo.event.context.rule == "round_up"
        assert home.engine.stats["round_up"].skipped_echo == 1


async def test_a_ping_pong_between_two_rules_is_cut_by_the_chain_depth(tmp_path: Path) -> None:
    rule_file(tmp_path, "r.py", PING_PONG)
    with structlog.testing.capture_logs() as logs:
        async with simulate(tmp_path, HOME, loop=LoopLimits(max_depth=6)) as home:
            await home.set("Den", mode="eco")
            assert len(home.commands) == 6  # then the seventh hop is cut
            cut = [t for t in home.traces() if t.reason.startswith("loop cut")]
            assert len(cut) == 1
            assert "causation chain of 6 rule hops" in cut[0].reason
            assert set(cut[0].chain) == {"ping", "pong"}
            assert home.engine.stats[cut[0].rule].loop_cuts == 1
    warnings = [e for e in logs if e["event"] == "rule loop cut"]
    assert warnings
    assert set(warnings[0]["rules"]) == {"ping", "pong"}


async def test_a_rule_refired_by_echoes_too_often_is_cut(tmp_path: Path) -> None:
    rule_file(tmp_path, "r.py", PING_PONG)
    limits = LoopLimits(max_depth=1000, echo_runs=3, echo_window_s=60)
    async with simulate(tmp_path, HOME, loop=limits) as home:
        await home.set("Den", mode="eco")
        cut = [t for t in home.traces() if t.reason.startswith("loop cut")]
        assert len(cut) == 1
        assert "re-fired by command echoes 3 times in 60s" in cut[0].reason
        assert len(home.commands) == 7  # ping by hand, then 3 echo-fired runs of each
        # a person's change is not an echo: it still works afterwards
        home.clear()
        await home.advance("2m")
        await home.set("Den", mode="eco")
        assert home.actions()[0] == "Den: eco off"


async def test_react_to_own_echo_is_possible_and_still_bounded(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("setpoint", device="Den"), react_to_own_echo=True)
        async def creep(event, home):
            if event.new < 25:
                await home.device().set_heat(event.new + 1)
        """,
    )
    async with simulate(tmp_path, HOME, loop=LoopLimits(max_depth=3)) as home:
        await home.set("Den", heat_setpoint_c=20.0 + 0.5)
        assert home.actions() == [
            "Den: heat to 21.5 °C",
            "Den: heat to 22.5 °C",
            "Den: heat to 23.5 °C",
        ]
        assert home.traces("creep")[-1].reason.startswith("loop cut")
