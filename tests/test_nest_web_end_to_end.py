"""The whole path over the Nest web wire: simulator ↔ daemon ↔ notification sink."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from roost.core.events import CoAlarm, CommandOutcome, Event, Outcome, ThermostatModeChanged
from roost.testing.stack import running_stack

pytestmark = pytest.mark.anyio

RULES = Path(__file__).parent.parent / "rules"
HOME = "structure-home"
ALARM = "alarm-hallway"
ECO_ON = {"eco": {"mode": "manual-eco"}}


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while not predicate():
            await anyio.sleep(0.01)


async def test_a_bucket_change_becomes_an_event_and_a_push(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="nest_web") as stack:
        inbox = stack.runtime.bus.subscribe("test")
        await stack.connected()
        stack.home.set_co(ALARM, "emergency")
        with anyio.fail_after(10):
            received = await stack.sink.wait_for(1)
            found: list[Event] = []
            while not found:
                found = [e for e in await inbox.receive() if isinstance(e, CoAlarm)]
        assert received[0]["title"] == "CO emergency in the Hallway"
        assert found[0].new == "emergency"
        assert found[0].context.catch_up is False


async def test_a_rules_command_lands_as_a_put_and_its_echo_confirms_it(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="nest_web") as stack:
        inbox = stack.runtime.bus.subscribe("test")
        await stack.connected()
        stack.home.set_away(HOME, True)
        confirmed: list[CommandOutcome] = []
        echoes: list[ThermostatModeChanged] = []
        with anyio.fail_after(10):
            while len(confirmed) < 2 or len(echoes) < 2:
                for event in await inbox.receive():
                    if isinstance(event, CommandOutcome) and event.outcome is Outcome.CONFIRMED:
                        confirmed.append(event)
                    if isinstance(event, ThermostatModeChanged) and event.new == "eco":
                        echoes.append(event)
        puts = [key for key, fields in stack.cloud.writes if fields == ECO_ON]
        assert sorted(puts) == ["device.thermostat-bedroom", "device.thermostat-living-room"]
        assert all(t.mode == "eco" for t in stack.home.thermostats.values())
        assert {e.context.rule for e in echoes} == {"eco_when_away"}
        assert {e.context.causation for e in echoes} == {c.command for c in confirmed}


async def test_a_dropped_long_poll_resyncs_without_losing_a_change(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="nest_web") as stack:
        await stack.connected()
        inbox = stack.runtime.bus.subscribe("test")
        await wait_until(lambda: stack.cloud.server.open_streams == 1)
        stack.cloud.drop_subscriptions()
        stack.home.set_co(ALARM, "emergency")  # happens while nobody is subscribed
        with anyio.fail_after(15):
            received = await stack.sink.wait_for(1)
            caught_up: list[Event] = []
            while not caught_up:
                caught_up = [e for e in await inbox.receive() if isinstance(e, CoAlarm)]
        assert received[0]["title"] == "CO emergency in the Hallway"
        assert caught_up[0].new == "emergency"
        assert caught_up[0].context.catch_up is True


async def test_the_nest_web_demo_runs_its_scenario_and_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from roost.cli.demo import run_demo

    assert await run_demo(RULES, sys.stdout, speed=10.0, vendor="nest_web") == 0
    out = capsys.readouterr().out
    assert "eco on → Living Room: confirmed by the device's echo" in out
    assert "received [failure] CO warning in the Hallway" in out
    assert "eco off → Living Room: refused (no fan or HVAC start during a smoke or CO alarm" in out
    assert "eco off → Living Room: confirmed by the device's echo" in out  # resumed when clear
    assert "demo passed" in out
