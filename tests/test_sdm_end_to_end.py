"""Google SDM end to end over loopback: the SDM simulator ↔ the whole daemon ↔ the sink.

The daemon refreshes its OAuth token, lists the devices and long-polls Pub/Sub; the
repository's rules run; commands go out as `executeCommand`; pushes arrive at the sink.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from roost.config.settings import NotifyTarget, Settings
from roost.core.events import Chime, CommandOutcome, Event, Outcome, TemperatureChanged
from roost.core.secret import Secret
from roost.providers.nest_wwn import NestWwnAccount
from roost.providers.sdm import SdmAccount
from roost.service.runtime import Runtime
from roost.simulator import nest_wwn, sdm
from roost.simulator.home import SimHome
from roost.simulator.sink import serve_sink
from roost.testing.stack import running_stack

pytestmark = pytest.mark.anyio

RULES = Path(__file__).parent.parent / "rules"
LOUNGE = "thermostat-lounge"
DOORBELL = "doorbell-front"


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while not predicate():
            await anyio.sleep(0.01)


def executed(cloud: sdm.SdmSimulator, suffix: str) -> list[sdm.CommandRequest]:
    return [c for c in cloud.commands if c.command.endswith(suffix) and c.status == 200]


async def test_a_hot_room_gets_a_lower_cooling_setpoint(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="sdm") as stack:
        inbox = stack.runtime.bus.subscribe("test")
        await stack.connected()
        stack.home.set_ambient(LOUNGE, 26.5)
        await wait_until(lambda: bool(executed(stack.cloud, "SetCool")))
        assert executed(stack.cloud, "SetCool")[0].params == {"coolCelsius": 24.0}
        assert stack.home.thermostat(LOUNGE).target_c == 24.0
        confirmed: list[CommandOutcome] = []
        with anyio.fail_after(10):
            async for batch in inbox:
                confirmed += [
                    e
                    for e in batch
                    if isinstance(e, CommandOutcome) and e.outcome is Outcome.CONFIRMED
                ]
                if confirmed:
                    break
        assert confirmed[0].rule == "cool a hot room"


async def test_a_doorbell_chime_pushes_one_notification(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="sdm") as stack:
        await stack.connected()
        stack.cloud.subscription.duplicate_deliveries = True  # at-least-once, for real
        stack.home.doorbell_chime(DOORBELL)
        with anyio.fail_after(10):
            received = await stack.sink.wait_for(1)
        assert received[0]["title"] == "Someone is at the Front Door"
        await anyio.sleep(3.0)  # the thread ends (ENDED repeats the chime), copies arrive
        await wait_until(lambda: stack.cloud.subscription.backlog == 0)
        assert len(stack.sink.received) == 1


async def test_redelivered_and_out_of_order_messages_neither_double_fire_nor_roll_back(
    tmp_path: Path,
) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="sdm") as stack:
        inbox = stack.runtime.bus.subscribe("test")
        await stack.connected()
        subscription = stack.cloud.subscription
        subscription.ack_deadline_s = 1.0
        subscription.hold()
        stack.home.doorbell_chime(DOORBELL)
        for celsius in (25.2, 25.4, 25.6):
            stack.home.set_ambient(LOUNGE, celsius)
            await anyio.sleep(0.01)
        subscription.fail_next_acks(1)  # the first batch's ack is lost: all of it comes again
        subscription.release(reverse=True)
        await wait_until(lambda: bool(stack.sink.received))
        await wait_until(lambda: subscription.stats.redeliveries > 0, timeout_s=15)
        await wait_until(lambda: subscription.backlog == 0, timeout_s=15)
        events: list[Event] = []
        while True:
            try:
                events += inbox.receive_nowait()
            except anyio.WouldBlock:
                break
        temperatures = [e.new for e in events if isinstance(e, TemperatureChanged)]
        assert temperatures == sorted(temperatures)
        assert temperatures[-1] == 25.6
        assert len([e for e in events if isinstance(e, Chime)]) == 1
        assert len(stack.sink.received) == 1
        lounge = stack.runtime.state.device(LOUNGE)
        assert lounge is not None
        assert getattr(lounge, "ambient_c", None) == 25.6


async def test_the_sdm_demo_runs_its_scenario_and_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from roost.cli.demo import run_demo

    assert await run_demo(RULES, sys.stdout, speed=10.0, vendor="sdm") == 0
    out = capsys.readouterr().out
    assert "cool to 24 °C → Lounge: confirmed by the device's echo" in out
    assert "received [info] Someone is at the Front Door" in out
    assert "device_added [camera-garage]" in out
    assert "demo passed" in out


CROSS_ACCOUNT_RULE = '''
from roost import rule, when


@rule(on=when("co", to="emergency"))
async def hvac_off_everywhere(event, home):
    """CO anywhere: every thermostat of every account off (Nest house and SDM villa)."""
    for thermostat in home.thermostats():
        if thermostat.mode != "off":
            await thermostat.set_mode("off")
'''


async def test_a_rule_combines_co_from_one_account_with_an_sdm_thermostat(
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "cross.py").write_text(CROSS_ACCOUNT_RULE, encoding="utf-8")
    house, villa = SimHome.demo(), sdm.demo_home()
    async with (
        nest_wwn.serve(house, keepalive_s=1.0) as wwn,
        sdm.serve(villa, pull_wait_s=2.0) as cloud,
        serve_sink() as sink,
        anyio.create_task_group() as tg,
    ):
        settings = Settings()
        settings.daemon.rules_dir = rules
        settings.daemon.state_dir = tmp_path / "state"
        settings.notify.targets = [NotifyTarget(url=Secret(sink.url))]
        settings.accounts = [
            NestWwnAccount(
                name="house", provider="nest_wwn", api_url=wwn.url, token=Secret(wwn.token)
            ),
            SdmAccount(
                name="villa",
                provider="sdm",
                api_url=cloud.api_url,
                token_url=cloud.token_url,
                pubsub_url=cloud.pubsub_url,
                project_id=cloud.names.project_id,
                client_id=cloud.client_id,
                client_secret=Secret(cloud.client_secret),
                refresh_token=Secret(cloud.refresh_token),
                subscription=cloud.subscription.name,
                pull_timeout_s=5.0,
            ),
        ]
        runtime = Runtime(settings)
        runtime.load_rules()
        tg.start_soon(runtime.run)
        with anyio.fail_after(10):
            await runtime.state.wait_baseline("house")
            await runtime.state.wait_baseline("villa")
        house.set_co("alarm-hallway", "emergency")
        await wait_until(lambda: len(executed(cloud, "ThermostatMode.SetMode")) == 2)
        assert {c.params["mode"] for c in executed(cloud, "ThermostatMode.SetMode")} == {"OFF"}
        await wait_until(lambda: all(t.mode == "off" for t in villa.thermostats.values()))
        await wait_until(lambda: all(t.mode == "off" for t in house.thermostats.values()))
        tg.cancel_scope.cancel()
