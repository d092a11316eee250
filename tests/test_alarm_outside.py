"""Outside checks of the alarm promise, through a real `roost run` against the simulated
clouds: whatever else the daemon is busy with, a smoke/CO push reaches the sink at once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream

from roost.simulator.http import Request, Response, serve
from roost.store.sqlite import Store
from tests.faults.harness import fault_bed, wait_for

pytestmark = pytest.mark.anyio

ALARM = "alarm-hallway"
CO_TITLE = "CO emergency in the Hallway"
BACKLOG = 150


@asynccontextmanager
async def hanging_target() -> AsyncIterator[str]:
    """A push endpoint that never answers (a stalled self-hosted push server)."""

    async def hang(request: Request) -> Response:
        await anyio.sleep(60)
        return Response(200, {"ok": True})

    async with serve(hang) as server:
        yield f"json://127.0.0.1:{server.port}/stalled"


async def backlog(state_dir: Path, count: int, tag: str) -> None:
    """`count` ordinary pushes left pending by an earlier run, all due now."""
    await anyio.Path(state_dir).mkdir(parents=True, exist_ok=True)
    store = Store.open(state_dir)
    created = datetime.now(UTC) - timedelta(minutes=5)
    try:
        for n in range(count):
            payload = {"title": f"chatter {n}", "body": "", "tags": [tag], "priority": "normal"}
            await store.outbox_add(f"chatter-{n}", payload, created + timedelta(milliseconds=n))
    finally:
        store.close()


async def test_a_backlog_for_a_stalled_target_does_not_hold_back_the_alarm(
    tmp_path: Path,
) -> None:
    """Ordinary pushes pending for a target that hangs: the CO push, routed to a healthy
    target, must not wait for them. apprise sends through one shared pool of cpu + 4
    threads, each stalled delivery holds a thread for its 4 s read timeout, and the alarm
    queued behind them arrived 11.7 s late with 20 of them (2 cores). Past 100 of them the
    outbox's batch (oldest first, deliveries in flight counted) left the alarm out too."""
    async with hanging_target() as stalled:
        extra = f'tags = ["urgent"]\n\n[[notify.targets]]\nurl = "{stalled}"\ntags = ["chatter"]\n'
        async with fault_bed(tmp_path, config=extra, keepalive_timeout_s=30) as bed:
            await backlog(bed.state_dir, BACKLOG, "chatter")
            await bed.daemon.start()
            await bed.daemon.wait_connected(1)
            await anyio.sleep(1.0)  # the backlog's deliveries are in flight
            raised = time.monotonic()
            bed.home.set_co(ALARM, "emergency")
            await wait_for(lambda: bed.titles()[CO_TITLE] >= 1, timeout_s=12)
            latency = bed.arrivals[CO_TITLE][0] - raised
            print(f"alarm push {latency:.3f} s after the event, beside a stalled backlog")
            assert bed.daemon.process is not None
            bed.daemon.process.kill()  # no orderly stop: it would wait for the stalled ones
            assert latency < 3.0, latency


def helper_pid(log: str) -> int:
    for line in log.splitlines():
        if "notification helper started" in line:
            return int(json.loads(line)["pid"])
    raise AssertionError("no notification helper started")


async def test_an_alarm_fails_open_past_a_hung_notification_helper(tmp_path: Path) -> None:
    """The helper is alive but answers nothing (stopped, swapped out, a plugin deadlocked):
    the alarm must not wait on it forever, it goes out from the daemon itself."""
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        await wait_for(lambda: '"event": "ready"' in bed.daemon.log())
        pid = helper_pid(bed.daemon.log())
        os.kill(pid, signal.SIGSTOP)
        try:
            raised = time.monotonic()
            bed.home.set_co(ALARM, "emergency")
            await wait_for(lambda: bed.titles()[CO_TITLE] >= 1, timeout_s=12)
            print(f"alarm push {time.monotonic() - raised:.3f} s after the event, helper hung")
        finally:
            os.kill(pid, signal.SIGCONT)


AWAY_TITLE = "Everyone is out"
BACK_TITLE = "Someone is back"
PRESENCE_RULES = f"""
[[rule]]
name = "everyone out"
on = {{ event = "presence", to = "away" }}
do = [{{ action = "notify", title = "{AWAY_TITLE}" }}]

[[rule]]
name = "someone back"
on = {{ event = "presence", to = "home" }}
do = [{{ action = "notify", title = "{BACK_TITLE}" }}]
"""


async def test_a_hung_notification_helper_is_replaced_and_ordinary_pushes_go_out(
    tmp_path: Path,
) -> None:
    """Ordinary pushes are not sent by the daemon itself: they wait for the helper. A hung
    one (stopped) that does not answer within a bound is killed and another started, and
    the pushes queued meanwhile (the outbox keeps them) go out through it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "presence.toml").write_text(PRESENCE_RULES)
    async with fault_bed(tmp_path, rules, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        await wait_for(lambda: '"event": "ready"' in bed.daemon.log())
        pid = helper_pid(bed.daemon.log())
        os.kill(pid, signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            bed.home.set_away("structure-home", True)
            await anyio.sleep(0.5)
            bed.home.set_away("structure-home", False)
            await wait_for(
                lambda: bed.titles()[AWAY_TITLE] >= 1 and bed.titles()[BACK_TITLE] >= 1,
                timeout_s=40,
            )
            print(f"ordinary pushes {time.monotonic() - stopped:.3f} s after the helper hung")
            assert bed.daemon.log().count("notification helper started") == 2
            assert '"event": "notification helper does not answer; killed"' in bed.daemon.log()
        finally:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def test_a_helper_waiting_on_a_slow_target_is_not_taken_for_hung(tmp_path: Path) -> None:
    """A target that takes 8 s to answer (a byte every 0.5 s: apprise's read timeout never
    fires) holds its push in the helper past the 5 s after which the daemon asks the helper
    whether it lives: it answers, and is left to finish (killing it would send the push
    again, and cut the others it has in hand)."""
    arrivals: list[float] = []

    async def slow(client: SocketStream) -> None:
        async with client:
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await client.receive()
                arrivals.append(time.monotonic())
                body = b'{"ok": true}    '
                await client.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                await client.send(f"Content-Length: {len(body)}\r\n\r\n".encode())
                for byte in body:
                    await anyio.sleep(0.5)
                    await client.send(bytes([byte]))

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "presence.toml").write_text(PRESENCE_RULES)
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(listener.serve, slow)
        port = listener.extra(SocketAttribute.local_port)
        extra = f'\n[[notify.targets]]\nurl = "json://127.0.0.1:{port}/slow"\n'
        async with fault_bed(tmp_path, rules, config=extra, keepalive_timeout_s=30) as bed:
            await bed.daemon.start()
            await bed.daemon.wait_connected(1)
            await wait_for(lambda: '"event": "ready"' in bed.daemon.log())
            bed.home.set_away("structure-home", True)
            await wait_for(lambda: bool(arrivals))
            await anyio.sleep(9.0)  # the target takes 8 s (the store is read only after it)
            for _ in range(20):
                if outbox_states(bed.state_dir) == ["delivered"]:
                    break
                await anyio.sleep(0.5)
            assert outbox_states(bed.state_dir) == ["delivered"]
            print(f"delivered {time.monotonic() - arrivals[0]:.3f} s after it reached the target")
            assert bed.daemon.log().count("notification helper started") == 1
            assert "does not answer" not in bed.daemon.log()
            assert len(arrivals) == 1
        tg.cancel_scope.cancel()


def outbox_states(state_dir: Path) -> list[str]:
    with sqlite3.connect(state_dir / "roost.db") as db:
        return [str(state) for (state,) in db.execute("SELECT state FROM outbox")]


@asynccontextmanager
async def flaky_target(received: list[str], up: anyio.Event) -> AsyncIterator[str]:
    """A push endpoint that answers 503 until `up` is set (a push service's outage)."""

    async def answer(request: Request) -> Response:
        if not up.is_set():
            return Response(503, {"error": "down"})
        received.append(str(json.loads(request.body or b"{}").get("title")))
        return Response(200, {"ok": True})

    async with serve(answer) as server:
        yield f"json://127.0.0.1:{server.port}/flaky"


async def test_an_alarm_failing_for_hours_is_retried_promptly_and_never_given_up(
    tmp_path: Path,
) -> None:
    """A CO push whose target has been down for 7 hours (8 attempts so far): when the
    target is back, the push goes out within seconds (not after a 5-minute back-off), and
    it was never marked dead (6 hours is the give-up age of ordinary pushes)."""
    received: list[str] = []
    up = anyio.Event()
    async with flaky_target(received, up) as flaky:
        extra = f'tags = ["none"]\n\n[[notify.targets]]\nurl = "{flaky}"\n'
        async with fault_bed(tmp_path, config=extra, keepalive_timeout_s=30) as bed:
            await anyio.Path(bed.state_dir).mkdir(parents=True)
            store = Store.open(bed.state_dir)
            created = datetime.now(UTC) - timedelta(hours=7)
            payload = {"title": CO_TITLE, "body": "", "priority": "urgent", "alarm": True}
            await store.outbox_add("co-7h", payload, created)
            await store.outbox_update(
                "co-7h",
                state="pending",
                attempts=8,
                delivered_to=[],
                next_attempt_at=datetime.now(UTC),
            )
            store.close()
            await bed.daemon.start()
            await wait_for(lambda: '"notification not delivered"' in bed.daemon.log())
            up.set()
            await wait_for(lambda: CO_TITLE in received, timeout_s=20)
            assert '"notification given up"' not in bed.daemon.log()
