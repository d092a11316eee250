"""The whole path over the real wire: simulator ↔ daemon ↔ notification sink."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from roost.core.events import CoAlarm, CommandOutcome, Outcome, ThermostatModeChanged
from roost.testing.stack import running_stack

pytestmark = pytest.mark.anyio

RULES = Path(__file__).parent.parent / "rules"
HOME = "structure-home"


async def wait_until(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout_s):
        while not predicate():
            await anyio.sleep(0.01)


async def test_away_puts_every_thermostat_in_eco(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        await stack.connected()
        stack.home.set_away(HOME, True)
        await wait_until(lambda: all(t.mode == "eco" for t in stack.home.thermostats.values()))
        eco_writes = [body for path, body in stack.cloud.writes if body.get("hvac_mode") == "eco"]
        assert len(eco_writes) == 2


async def test_co_emergency_notification_reaches_the_sink(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        await stack.connected()
        stack.home.set_co("alarm-hallway", "emergency")
        with anyio.fail_after(10):
            received = await stack.sink.wait_for(1)
        assert received[0]["title"] == "CO emergency in the Hallway"
        assert "carbon monoxide" in received[0]["message"]


async def test_a_rules_own_echo_carries_its_causation(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        inbox = stack.runtime.bus.subscribe("test")
        await stack.connected()
        stack.home.set_away(HOME, True)
        sent: dict[str, CommandOutcome] = {}
        echoes: list[ThermostatModeChanged] = []
        confirmed: list[CommandOutcome] = []
        with anyio.fail_after(10):
            async for batch in inbox:
                for event in batch:
                    if isinstance(event, CommandOutcome) and event.outcome is Outcome.SENT:
                        sent[event.command] = event
                    if isinstance(event, CommandOutcome) and event.outcome is Outcome.CONFIRMED:
                        confirmed.append(event)
                    if isinstance(event, ThermostatModeChanged) and event.new == "eco":
                        echoes.append(event)
                if len(echoes) == 2 and len(confirmed) == 2:
                    break
        for echo in echoes:
            assert echo.context.causation in sent
            assert echo.context.rule == "eco_when_away"
        assert all(c.latency_s is not None and c.latency_s >= 0 for c in confirmed)


async def test_a_change_made_while_the_stream_was_down_is_caught_up(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        await stack.connected()
        inbox = stack.runtime.bus.subscribe("test")
        stack.cloud.silence_keepalives(True)  # nothing flows while we cut the stream
        stack.cloud.drop_streams()
        stack.home.set_co("alarm-hallway", "emergency")  # happens during the outage
        stack.cloud.silence_keepalives(False)
        with anyio.fail_after(15):
            received = await stack.sink.wait_for(1)
        assert received[0]["title"] == "CO emergency in the Hallway"
        caught_up = []
        while not caught_up:
            batch = await inbox.receive()
            caught_up = [e for e in batch if isinstance(e, CoAlarm)]
        assert caught_up[0].new == "emergency"
        assert caught_up[0].context.catch_up is True


async def test_the_demo_runs_its_scenario_and_passes(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from roost.cli.demo import run_demo

    assert await run_demo(RULES, sys.stdout, speed=10.0, vendor="nest_wwn") == 0
    out = capsys.readouterr().out
    assert "eco on → Living Room: confirmed by the device's echo" in out
    assert "received [failure] CO warning in the Hallway" in out
    assert "eco off → Living Room: refused (no fan or HVAC start during a smoke or CO alarm" in out
    assert "demo passed" in out
