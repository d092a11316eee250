"""Faults on the wire, injected by the simulator and met by the real daemon over loopback:
every change still becomes an event, and the account recovers on its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from roost.core.events import AccountStatus, CoAlarm, ConnectionState, Event
from roost.simulator.clouds import KEEPALIVE_S
from roost.testing.stack import Stack, running_stack
from tests.faults.harness import RULES, TALLY, wait_for

pytestmark = pytest.mark.anyio

ALARM = "alarm-hallway"


def provider_stats(stack: Stack) -> object:
    return stack.runtime.providers[0].stats  # type: ignore[attr-defined]


async def co_arrives(stack: Stack, inbox: object, state: str) -> CoAlarm:
    """The CO change reaches the bus as an event (it was not lost)."""
    with anyio.fail_after(15):
        async for batch in inbox:  # type: ignore[attr-defined]
            found = [e for e in batch if isinstance(e, CoAlarm) and e.new == state]
            if found:
                return found[0]
    raise AssertionError("unreachable")


async def survive(tmp_path: Path, fault: str, inject: Callable[[Stack], None]) -> Stack:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        await stack.connected()
        inbox = stack.runtime.bus.subscribe("fault")
        inject(stack)
        stack.home.set_co(ALARM, "emergency")
        TALLY.faults[fault] += 1
        try:
            await co_arrives(stack, inbox, "emergency")
        except TimeoutError:
            TALLY.events_lost += 1
            raise
        await wait_for(lambda: len(stack.sink.received) >= 1, timeout_s=10)
        return stack


@pytest.mark.parametrize("fault", ["garbage", "invalid_json", "truncated", "slow_drip", "huge"])
async def test_a_damaged_stream_loses_no_change(tmp_path: Path, fault: str) -> None:
    stack = await survive(tmp_path, f"stream {fault}", lambda s: s.cloud.corrupt_stream(fault))
    assert stack.sink.received[0]["title"] == "CO emergency in the Hallway"
    stats = provider_stats(stack)
    if fault in ("invalid_json", "huge"):
        assert stats.malformed >= 1  # type: ignore[attr-defined]
    if fault in ("truncated", "huge"):
        assert stats.connects >= 2  # type: ignore[attr-defined]


async def test_a_dropped_stream_loses_no_change(tmp_path: Path) -> None:
    def drop_then_change(stack: Stack) -> None:
        stack.cloud.drop_streams()

    await survive(tmp_path, "stream dropped mid-body", drop_then_change)


@pytest.mark.parametrize(("status", "retry_after"), [(429, 0.2), (503, None)])
async def test_a_storm_of_refused_connections_is_ridden_out(
    tmp_path: Path, status: int, retry_after: float | None
) -> None:
    def storm(stack: Stack) -> None:
        retry = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
        stack.cloud.fail_next("read", 4, status, headers=retry)
        stack.cloud.drop_streams()

    await survive(tmp_path, f"{status} storm on reconnect", storm)


async def test_a_silent_stream_is_detected_within_two_keepalive_intervals(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        await stack.connected()
        stats = provider_stats(stack)
        before = stats.connects  # type: ignore[attr-defined]
        stack.cloud.silence_keepalives(True)
        silent_since = time.monotonic()
        TALLY.faults["keep-alives stopped"] += 1
        await wait_for(lambda: stats.connects > before, timeout_s=10)  # type: ignore[attr-defined]
        took = time.monotonic() - silent_since
        assert took <= 2 * KEEPALIVE_S + 0.25, took  # the last keep-alive came before silence
        stack.cloud.silence_keepalives(False)


async def test_a_revoked_token_stops_the_account_with_an_urgent_push(tmp_path: Path) -> None:
    async with running_stack(RULES, state_dir=tmp_path) as stack:
        await stack.connected()
        inbox = stack.runtime.bus.subscribe("fault")
        stack.cloud.revoke_token()
        TALLY.faults["auth_revoked"] += 1
        statuses: list[Event] = []
        with anyio.fail_after(10):
            async for batch in inbox:
                statuses += [e for e in batch if isinstance(e, AccountStatus)]
                if any(s.state is ConnectionState.AUTH_FAILED for s in statuses):  # type: ignore[attr-defined]
                    break
        await wait_for(lambda: len(stack.sink.received) >= 1, timeout_s=10)
        push = stack.sink.received[0]
        assert "authorization" in push["title"].lower()
        assert push["type"] == "failure"  # urgent
        connects = provider_stats(stack).connects  # type: ignore[attr-defined]
        await anyio.sleep(1.0)
        assert provider_stats(stack).connects == connects  # no reconnect storm  # type: ignore[attr-defined]
