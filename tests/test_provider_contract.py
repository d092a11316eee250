"""The provider contract, run against all four simulated clouds.

Each case injects the same fault through the simulators' one fault API (`fail_next`) into
the subscription's next read, with a real provider reading over loopback HTTP, and
expects the same thing of every vendor: the account says what happened (DISCONNECTED
with the reason for a refused, dropped or unreadable read; RECOVERING for a crash;
AUTH_FAILED when the credentials are gone) and comes back CONNECTED on its own, and a
change made in the home afterwards reaches the sink. Nothing is mocked: the sink is the
recording `ChangeSink` of the provider tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import httpx
import pytest

from roost.core.events import ConnectionState
from roost.core.model import Change, Home
from roost.providers.core import ProviderCore
from roost.providers.nest_web.provider import NestWebProvider
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.providers.netatmo.provider import NetatmoProvider
from roost.providers.sdm.provider import SdmProvider
from roost.simulator import nest_web, nest_wwn, netatmo, sdm
from roost.simulator.faults import DROP, SILENT
from roost.simulator.home import SimHome
from tests.provider_kit import make
from tests.recording import RecordingSink

VENDORS = ("nest_wwn", "nest_web", "netatmo", "sdm")
pytestmark = pytest.mark.anyio
THERMOSTAT = "thermostat-living-room"
WAIT_S = 15.0
FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.2}
UP, DOWN = ConnectionState.CONNECTED, ConnectionState.DISCONNECTED


def NO_NUDGE() -> None:
    """A long poll, a pull or a poll reads again soon on its own."""


@dataclass
class Cloud:
    """One simulated cloud and the few things the contract does to it."""

    sim: Any
    home: SimHome
    provider: ProviderCore[Any, Any]
    revoke: Callable[[], None]
    # Make the provider read again now. A stream has to be dropped for that, and then the
    # drop is the reason it reports (the fault comes on the reconnect, already down).
    read_now: Callable[[], None] = NO_NUDGE
    client: httpx.AsyncClient | None = None


@asynccontextmanager
async def cloud(vendor: str) -> AsyncIterator[Cloud]:
    home = SimHome.demo()
    if vendor == "nest_wwn":
        async with nest_wwn.serve(home, keepalive_s=0.2) as wwn:
            options = {"api_url": wwn.url, "token": wwn.token, "keepalive_timeout_s": 1.0}
            provider = make(NestWwnProvider, "nest_wwn", **options, **FAST)
            yield Cloud(wwn, home, provider, wwn.revoke_token, wwn.drop_streams)
    elif vendor == "nest_web":
        async with nest_web.serve(home, hold_s=0.2) as web:

            def change_password() -> None:
                web.password = "changed by the owner"
                web.expire_sessions()

            options = {"email": web.email, "password": web.password, **FAST}
            provider = make(
                NestWebProvider, "nest_web", api_url=web.url, subscribe_timeout_s=1.0, **options
            )
            yield Cloud(web, home, provider, change_password)
    elif vendor == "netatmo":
        async with netatmo.serve(home) as atmo, httpx.AsyncClient(timeout=1.0) as client:
            provider = make(
                NetatmoProvider,
                "netatmo",
                api_url=atmo.url,
                client_id=atmo.client_id,
                client_secret=atmo.client_secret,
                refresh_token=atmo.refresh_token,
                fast_poll_s=0.1,
                slow_poll_s=0.2,
                rate_limited_pause_s=0.2,
                client=client,
                **FAST,
            )
            yield Cloud(atmo, home, provider, atmo.revoke)
    else:
        async with sdm.serve(home, pull_wait_s=0.2) as google:
            provider = make(
                SdmProvider,
                "sdm",
                project_id=google.names.project_id,
                client_id=google.client_id,
                client_secret=google.client_secret,
                refresh_token=google.refresh_token,
                subscription=google.subscription.name,
                api_url=google.api_url,
                token_url=google.token_url,
                pubsub_url=google.pubsub_url,
                pull_timeout_s=1.0,
                **FAST,
            )
            yield Cloud(google, home, provider, google.revoke)


@dataclass
class CrashOnce(RecordingSink):
    """The recording sink, except that the report after `arm()` (a snapshot or a patch)
    raises: a crash in the middle of handling a payload, as a bug in a normalizer would be."""

    armed: bool = False
    crashes: list[str] = field(default_factory=list)

    def arm(self) -> None:
        self.armed = True

    def _crash_if_armed(self, account: str) -> None:
        if self.armed:
            self.armed = False
            self.crashes.append(account)
            raise RuntimeError("a bug while handling a payload")

    async def snapshot(self, account: str, home: Home, at: datetime) -> None:
        self._crash_if_armed(account)
        await super().snapshot(account, home, at)

    async def patch(self, account: str, changes: Sequence[Change], at: datetime) -> None:
        self._crash_if_armed(account)
        await super().patch(account, changes, at)


@dataclass
class Running:
    cloud: Cloud
    sink: CrashOnce
    done: anyio.Event

    def since(self, mark: int) -> list[ConnectionState]:
        """The states reported after `mark` reports, each change once."""
        return self.sink.states[mark:]

    async def change_arrives(self, celsius: float) -> None:
        """A change made in the home now reaches the sink."""
        self.cloud.home.set_ambient(THERMOSTAT, celsius)
        await self.sink.wait_for(lambda: _ambient_seen(self.sink, celsius), WAIT_S)


def _ambient_seen(sink: RecordingSink, celsius: float) -> bool:
    patched = [c.value for batch in sink.patches for c in batch if c.attribute == "ambient_c"]
    if any(isinstance(v, float) and abs(v - celsius) < 0.05 for v in patched):
        return True
    if not sink.snapshots:
        return False
    return any(
        abs((getattr(d, "ambient_c", None) or -99.0) - celsius) < 0.05
        for d in sink.latest.devices.values()
    )


@asynccontextmanager
async def running(vendor: str) -> AsyncIterator[Running]:
    async with cloud(vendor) as c:
        sink = CrashOnce()
        done = anyio.Event()
        async with c.provider, anyio.create_task_group() as tg:

            async def run() -> None:
                await c.provider.run(sink)
                done.set()

            tg.start_soon(run)
            await sink.wait_for(lambda: bool(sink.snapshots) and sink.states[-1:] == [UP], WAIT_S)
            try:
                yield Running(c, sink, done)
            finally:
                tg.cancel_scope.cancel()


async def fault_then_recovery(r: Running, *fault: Any, **options: Any) -> list[ConnectionState]:
    """Inject the fault into the next read; wait until the account is back and a later
    change arrives; the states it went through."""
    mark = len(r.sink.statuses)
    r.cloud.sim.fail_next("read", *fault, **options)
    r.cloud.read_now()
    await r.sink.wait_for(lambda: len(r.sink.statuses) > mark, WAIT_S)
    await r.sink.wait_for(lambda: r.sink.states[-1] is UP, WAIT_S)
    await r.change_arrives(27.0)
    return r.since(mark)


def reasons(r: Running, mark: int) -> str:
    return " ".join(detail for state, detail in r.sink.statuses[mark:] if state is DOWN)


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_5xx_storm_disconnects_with_the_status_and_recovers(vendor: str) -> None:
    async with running(vendor) as r:
        mark = len(r.sink.statuses)
        states = await fault_then_recovery(r, 3, 503)
        # Between refused reads a vendor whose connect is a separate call (a list, an
        # app_launch) may connect again: down and up, ending up, never anything else.
        assert states[0] is DOWN
        assert states[-1] is UP
        assert set(states) == {DOWN, UP}
        assert "503" in reasons(r, mark) or r.cloud.read_now is not NO_NUDGE


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_429_with_retry_after_waits_as_told_and_recovers(vendor: str) -> None:
    async with running(vendor) as r:
        mark = len(r.sink.statuses)
        states = await fault_then_recovery(r, 1, 429, headers={"Retry-After": "0.3"})
        assert states == [DOWN, UP]
        said = reasons(r, mark).lower()
        assert "429" in said or "rate" in said or r.cloud.read_now is not NO_NUDGE


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_dropped_connection_disconnects_and_recovers(vendor: str) -> None:
    async with running(vendor) as r:
        states = await fault_then_recovery(r, 1, DROP)
        assert states == [DOWN, UP]


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_malformed_payload_never_crashes_and_data_flows_after_it(vendor: str) -> None:
    async with running(vendor) as r:
        mark = len(r.sink.statuses)
        r.cloud.sim.fail_next("read", 1, 200, b'{"not": json')
        r.cloud.read_now()
        await anyio.sleep(0.5)
        await r.sink.wait_for(lambda: r.sink.states[-1] is UP, WAIT_S)
        await r.change_arrives(27.0)
        assert set(r.since(mark)) <= {DOWN, UP}  # skipped or resynced: never a crash
        assert r.sink.crashes == []


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_silent_read_is_given_up_and_data_flows_after_it(vendor: str) -> None:
    async with running(vendor) as r:
        mark = len(r.sink.statuses)
        r.cloud.sim.fail_next("read", 1, SILENT)
        r.cloud.read_now()
        await anyio.sleep(1.5)  # past every provider's read timeout (1 s here)
        await r.sink.wait_for(lambda: r.sink.states[-1] is UP, WAIT_S)
        await r.change_arrives(27.0)
        # A long poll's silence is the server holding on (Nest web asks again without a
        # word); a stream's or a poll's is a dead read, reported and reconnected.
        assert set(r.since(mark)) <= {DOWN, UP}


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_crash_while_handling_a_payload_is_recovered_and_status_follows(
    vendor: str,
) -> None:
    async with running(vendor) as r:
        mark = len(r.sink.statuses)
        r.sink.arm()
        r.cloud.home.set_ambient(THERMOSTAT, 26.0)  # a change: the next snapshot crashes
        await r.sink.wait_for(lambda: bool(r.sink.crashes), WAIT_S)
        await r.sink.wait_for(lambda: r.sink.states[-1] is UP, WAIT_S)
        await r.change_arrives(27.0)
        assert r.since(mark) == [ConnectionState.RECOVERING, UP]
        assert "crashed: RuntimeError" in r.sink.statuses[mark][1]
        assert r.cloud.provider.supervisor.stats.crashes == 1


@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_payload_nested_too_deep_for_the_parser_never_leaves_the_status_stuck(
    vendor: str,
) -> None:
    async with running(vendor) as r:
        mark = len(r.sink.statuses)
        deep = b"[" * 100_000 + b"]" * 100_000  # a RecursionError in json, or a parse cap
        r.cloud.sim.fail_next("read", 1, 200, deep)
        r.cloud.read_now()
        await anyio.sleep(0.5)
        await r.sink.wait_for(lambda: r.sink.states[-1] is UP, WAIT_S)
        await r.change_arrives(27.0)
        assert set(r.since(mark)) <= {DOWN, ConnectionState.RECOVERING, UP}


@pytest.mark.parametrize("vendor", VENDORS)
async def test_revoked_credentials_end_the_subscription_with_auth_failed(vendor: str) -> None:
    async with running(vendor) as r:
        r.cloud.revoke()
        r.cloud.sim.fail_next("read", 1, 401)
        r.cloud.read_now()
        await r.sink.wait_for(r.done.is_set, WAIT_S)
        assert r.sink.states[-1] is ConnectionState.AUTH_FAILED
        assert ConnectionState.RECOVERING not in r.sink.states
