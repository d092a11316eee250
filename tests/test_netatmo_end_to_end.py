"""Netatmo end to end: simulator ↔ daemon (rules, guards, dispatch) ↔ notification sink.

The daemon polls the simulated Netatmo cloud over loopback HTTP, its commands are Netatmo
writes, and notifications go through apprise to a local sink. The rate-limit scenario runs
the provider and the simulator on one virtual clock so two minutes pass in a few seconds.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from roost.core.clock import VirtualClock
from roost.core.commands import Command, CommandResult, FailureReason, SetHeat
from roost.core.events import CoAlarm, NotificationOutcome
from roost.core.secret import Secret
from roost.providers.netatmo import NetatmoAccount
from roost.providers.netatmo.provider import NetatmoProvider
from roost.service.runtime import Runtime
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink
from roost.testing.stack import running_stack, stack_settings
from tests.provider_kit import loopback_listen
from tests.test_netatmo_provider import RecordingSink, provider_for

pytestmark = pytest.mark.anyio

RULES = Path(__file__).parent.parent / "rules"
LIVING = "thermostat-living-room"
ALARM = "alarm-hallway"

WARM_UP = """
[[rule]]
name = "warm the living room"
on = { event = "temperature", device = "Living Room" }
condition = { device = "event", attribute = "ambient_c", below = 18 }
do = [{ action = "thermostat.set_heat", target = "event", celsius = 21 }]
"""


async def wait_until(predicate: Any, timeout_s: float = 10.0) -> None:
    with anyio.fail_after(timeout_s):
        while not predicate():
            await anyio.sleep(0.01)


async def test_a_cold_room_gets_a_manual_setpoint(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "warm.toml").write_text(WARM_UP, encoding="utf-8")
    async with running_stack(rules, state_dir=tmp_path / "state", vendor="netatmo") as stack:
        await stack.connected()
        stack.home.set_ambient(LIVING, 16.5)
        await wait_until(lambda: stack.home.thermostat(LIVING).target_c == 21.0)
        sent = [p for e, p in stack.cloud.writes if e == "setroomthermpoint"]
        assert len(sent) == 1
        assert (sent[0]["room_id"], sent[0]["mode"], sent[0]["temp"]) == (LIVING, "manual", "21")
        assert int(sent[0]["endtime"]) > stack.cloud.now().timestamp() + 3600


def co_pushes(sink: NotificationSink) -> list[dict[str, Any]]:
    return [p for p in sink.received if str(p.get("title", "")).startswith("CO ")]


@asynccontextmanager
async def daemon(
    account: NetatmoAccount, sink: NotificationSink, state: Path
) -> AsyncIterator[Runtime]:
    runtime = Runtime(stack_settings(RULES, account, sink.url, state, dry_run=False))
    runtime.load_rules()
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        with anyio.fail_after(10):
            await runtime.state.wait_baseline(account.name)
        try:
            yield runtime
        finally:
            tg.cancel_scope.cancel()


async def test_a_co_event_pushes_once_even_after_a_restart(tmp_path: Path) -> None:
    async with netatmo.serve(SimHome.demo()) as cloud, serve_sink() as sink:
        account = NetatmoAccount(
            name="home",
            provider="netatmo",
            api_url=cloud.url,
            client_id=cloud.client_id,
            client_secret=Secret(cloud.client_secret),
            refresh_token=Secret(cloud.refresh_token),
            fast_poll_s=0.2,
            slow_poll_s=1.0,
        )
        state = tmp_path / "state"  # tokens and the events cursor live here (SQLite)
        async with daemon(account, sink, state) as first:
            outcomes = first.bus.subscribe("test")
            cloud.home.set_co(ALARM, "emergency")
            with anyio.fail_after(10):
                await sink.wait_for(1)
                delivered = False
                while not delivered:  # the outbox has recorded the delivery
                    batch = await outcomes.receive()
                    delivered = any(isinstance(e, NotificationOutcome) for e in batch)
            assert co_pushes(sink)[0]["title"] == "CO emergency in the Hallway"
        async with daemon(account, sink, state) as again:
            events = again.bus.subscribe("test")
            provider = again.providers[0]
            assert isinstance(provider, NetatmoProvider)
            await wait_until(lambda: provider.stats.polls >= 4)
            assert len(co_pushes(sink)) == 1  # the restart did not report it again
            seen = []
            while True:
                try:
                    seen.extend(events.receive_nowait())
                except anyio.WouldBlock:
                    break
            assert not [e for e in seen if isinstance(e, CoAlarm)]
            cloud.home.set_co(ALARM, "ok")
            await wait_until(lambda: any("cleared" in str(p["title"]) for p in sink.received))
        # the seed refresh token was spent by the first daemon; the second used the saved set
        assert cloud.refreshes == 1


async def test_a_forged_webhook_is_refused(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path, vendor="netatmo") as stack:
        await stack.connected()
        provider = stack.runtime.providers[0]
        assert isinstance(provider, NetatmoProvider)
        await wait_until(lambda: stack.cloud.webhook_url is not None)
        body = json.dumps({"push_type": "NCO-co_detected", "event_type": "co_detected"}).encode()
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                stack.cloud.webhook_url, content=body, headers={"X-Netatmo-secret": "0" * 64}
            )
            assert forged.status_code == 403
            signed = netatmo.signature(stack.cloud.client_secret, body)
            genuine = await client.post(
                stack.cloud.webhook_url, content=body, headers={"X-Netatmo-secret": signed}
            )
            assert genuine.status_code == 200
        assert provider.webhooks.stats.rejected == 1
        assert provider.webhooks.stats.accepted >= 2  # the activation and ours


async def test_a_two_minute_burst_never_exceeds_netatmos_limits() -> None:
    clock = VirtualClock()
    home = SimHome.demo(clock=clock.now)
    async with netatmo.serve(home) as sim:
        provider = provider_for(
            sim, clock=clock, fast_poll_s=1.0, slow_poll_s=10.0, webhook_listen=loopback_listen()
        )
        sink = RecordingSink()
        results: list[CommandResult] = []

        async def write(n: int) -> None:
            now = clock.now()
            cmd = Command(
                f"burst-{n}", "acct", LIVING, SetHeat(18 + n % 5), now, now + timedelta(seconds=30)
            )
            results.append(await provider.execute(cmd))

        async with provider, anyio.create_task_group() as tg:
            tg.start_soon(provider.run, sink)
            await sink.wait_for(lambda: bool(sink.snapshots))
            sim.webhook_url = f"http://127.0.0.1:{provider.webhooks.port}/"
            for second in range(120):
                for n in range(4):  # a runaway rule: four writes a second
                    tg.start_soon(write, second * 4 + n)
                if second % 10 == 0:  # and the alarms and cameras keep waking the poll
                    home.set_co(ALARM, "warning" if second % 20 == 0 else "ok")
                    home.camera_event("camera-front-door", person=True)
                await clock.advance(1.0)
                await anyio.sleep(0.005)  # let the loopback I/O of this second finish
            tg.cancel_scope.cancel()

    assert sim.refused() == []  # Netatmo never had to say "User usage reached"
    assert sim.most_in_window(10.0) <= 50
    assert len(sim.requests) <= 500
    polls = [r for r in sim.requests if r.endpoint == "homestatus"]
    assert len(polls) >= 20  # the poll kept going through the burst
    limited = [r for r in results if r.reason is FailureReason.RATE_LIMITED]
    assert limited
    assert all("budget" in r.detail for r in limited)
    assert sum(r.ok for r in results) >= 100
    assert len(sink.co_states()) >= 10  # every alarm change was still reported


async def test_the_demo_runs_its_scenario_on_netatmo(capsys: pytest.CaptureFixture[str]) -> None:
    from roost.cli.demo import run_demo

    assert await run_demo(RULES, sys.stdout, speed=10.0, vendor="netatmo") == 0
    out = capsys.readouterr().out
    assert "eco on → Living Room: confirmed by the device's echo" in out
    assert "received [failure] CO warning in the Hallway" in out
    assert "eco off → Living Room: refused (no fan or HVAC start during a smoke or CO alarm" in out
    assert "heating schedule resumed       yes" in out
    assert "demo passed" in out
