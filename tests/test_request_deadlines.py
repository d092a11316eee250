"""Each vendor request has one deadline in all, headers and body: a server that trickles
one byte at a time fails a poll, a token refresh or a command within its cap, the same way
a timeout does, and the account goes on once the server behaves again.

The server is real: a small TCP listener on 127.0.0.1 in front of the Netatmo simulator.
For the paths it is told to stall it sends the headers of a long answer, then one body byte
every `DRIP_S`, far inside httpx's per-read timeout, so only the whole-request deadline
can end the request; every other request it passes to the simulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import pytest
from anyio.abc import SocketStream

from roost.core.commands import Command, FailureReason, SetHeat
from roost.core.events import ConnectionState
from roost.providers.base import RequestDeadlines
from roost.providers.netatmo.provider import NetatmoProvider
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from tests.provider_kit import make
from tests.recording import RecordingSink

pytestmark = pytest.mark.anyio

LIVING = "thermostat-living-room"
DRIP_S = 0.05  # one body byte this often: httpx's per-read timeout never fires
CAP_S = 0.6  # the caps under test
SLACK_S = 3.0  # a loaded machine's scheduling, on top of a cap
HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "accept-encoding"}


@dataclass
class Trickler:
    """Passes requests to `upstream`, except those whose path starts with one of
    `stalled`: those get headers, then a body one byte at a time, never finished."""

    upstream: str
    stalled: set[str] = field(default_factory=set)
    stalls: int = 0
    url: str = ""

    async def serve(self, client: SocketStream) -> None:
        async with client:
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError):
                method, path, headers, body = await _read_request(client)
                if any(path.startswith(prefix) for prefix in self.stalled):
                    self.stalls += 1
                    await _trickle(client)
                else:
                    await _forward(client, f"{self.upstream}{path}", method, headers, body)


async def _read_request(client: SocketStream) -> tuple[str, str, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await client.receive()
    head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = request_line.split(" ", 2)
    headers = dict(line.split(": ", 1) for line in lines)
    length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
    while len(body) < length:
        body += await client.receive()
    return method, path, headers, body


async def _trickle(client: SocketStream) -> None:
    await client.send(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000000\r\nConnection: close\r\n\r\n{"
    )
    while True:
        await anyio.sleep(DRIP_S)
        await client.send(b" ")


async def _forward(
    client: SocketStream, url: str, method: str, headers: dict[str, str], body: bytes
) -> None:
    sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
    async with httpx.AsyncClient() as upstream:
        answer = await upstream.request(method, url, headers=sent, content=body)
    kept = "".join(
        f"{k}: {v}\r\n"
        for k, v in answer.headers.items()
        if k.lower() not in HOP_BY_HOP | {"content-encoding"}
    )
    head = f"HTTP/1.1 {answer.status_code} X\r\n{kept}Content-Length: {len(answer.content)}\r\n"
    await client.send(f"{head}Connection: close\r\n\r\n".encode("latin-1") + answer.content)


@dataclass
class Account:
    sim: netatmo.NetatmoSimulator
    trickler: Trickler
    provider: NetatmoProvider
    sink: RecordingSink

    def failures(self) -> list[str]:
        return [d for s, d in self.sink.statuses if s is ConnectionState.DISCONNECTED]

    async def recovers(self) -> None:
        """The server behaves again: the account polls and is connected again."""
        self.trickler.stalled.clear()
        polls = self.provider.stats.polls
        await self.sink.wait_for(
            lambda: (
                self.provider.stats.polls > polls
                and self.sink.statuses[-1][0] is ConnectionState.CONNECTED
            )
        )


@asynccontextmanager
async def account(
    deadlines: RequestDeadlines, stalled: set[str] | None = None
) -> AsyncIterator[Account]:
    """A Netatmo account polling the simulator through a `Trickler`; `stalled` from the
    start (the first poll may then fail)."""
    async with (
        netatmo.serve(SimHome.demo()) as sim,
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        trickler = Trickler(sim.url, set(stalled or ()))
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.start_soon(listener.serve, trickler.serve)
        provider = make(
            NetatmoProvider,
            "netatmo",
            api_url=f"http://127.0.0.1:{port}",
            client_id=sim.client_id,
            client_secret=sim.client_secret,
            refresh_token=sim.refresh_token,
            fast_poll_s=0.1,
            slow_poll_s=0.1,
            backoff_initial_s=0.05,
            backoff_max_s=0.2,
            deadlines=deadlines,
        )
        sink = RecordingSink()
        async with provider, anyio.create_task_group() as polling:
            polling.start_soon(provider.run, sink)
            yield Account(sim, trickler, provider, sink)
            polling.cancel_scope.cancel()
        tg.cancel_scope.cancel()


def heat(setpoint: float, deadline_s: float) -> Command:
    now = datetime.now(UTC)
    return Command(
        id=f"cmd-{setpoint}",
        account="acct",
        target=LIVING,
        action=SetHeat(setpoint),
        issued_at=now,
        deadline=now + timedelta(seconds=deadline_s),
    )


async def test_a_trickled_poll_fails_within_the_read_cap_and_the_next_round_goes_on() -> None:
    async with account(RequestDeadlines(read_s=CAP_S), {"/api/homestatus"}) as a:
        started = anyio.current_time()
        await a.sink.wait_for(lambda: bool(a.failures()), CAP_S + SLACK_S)
        assert anyio.current_time() - started < CAP_S + SLACK_S
        assert a.trickler.stalls >= 1
        assert "no whole answer within" in a.failures()[0]
        assert a.provider.stats.failures >= 1
        assert a.provider.supervisor.stats.disconnects >= 1
        await a.recovers()
        assert a.sink.snapshots


async def test_a_trickled_token_refresh_fails_within_its_cap() -> None:
    deadlines = RequestDeadlines(read_s=30.0, refresh_s=CAP_S)  # the refresh's own cap holds
    async with account(deadlines, {"/oauth2/token"}) as a:
        started = anyio.current_time()
        await a.sink.wait_for(lambda: bool(a.failures()), CAP_S + SLACK_S)
        assert anyio.current_time() - started < CAP_S + SLACK_S
        assert "no whole answer within" in a.failures()[0]
        assert a.provider.keeper.refreshes == 0
        await a.recovers()
        assert a.provider.keeper.refreshes == 1


@pytest.mark.parametrize(
    ("deadlines", "command_deadline_s"),
    [
        pytest.param(RequestDeadlines(command_s=CAP_S), 60.0, id="the command cap"),
        pytest.param(RequestDeadlines(command_s=30.0), CAP_S, id="the command's own deadline"),
    ],
)
async def test_a_trickled_command_fails_as_a_timeout_within_its_cap(
    deadlines: RequestDeadlines, command_deadline_s: float
) -> None:
    async with account(deadlines) as a:
        await a.sink.wait_for(lambda: bool(a.sink.snapshots))
        a.trickler.stalled.add("/api/setroomthermpoint")
        started = anyio.current_time()
        with anyio.fail_after(CAP_S + SLACK_S):
            result = await a.provider.execute(heat(21.5, command_deadline_s))
        assert anyio.current_time() - started < CAP_S + SLACK_S
        assert (result.ok, result.reason) == (False, FailureReason.TIMEOUT)
        assert "no whole answer within" in (result.detail or "")
        assert a.trickler.stalls == 1
        a.trickler.stalled.clear()
        assert (await a.provider.execute(heat(21.5, 60.0))).ok
        assert a.sim.writes[-1][0] == "setroomthermpoint"
