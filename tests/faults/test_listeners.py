"""A neighbour on the same machine attacks each of the daemon's listeners (control socket,
metrics endpoint, Netatmo webhook receiver) while a real `roost run` is up: early
hang-ups, an idle flood past the daemon's own descriptor budget, slowloris, garbage and
oversize lines. The daemon and both accounts stay up, the listener answers again once the
attack stops, and a CO alarm raised during each attack is pushed within 1 s."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from roost.providers.netatmo.webhook import sign
from roost.service import control
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from tests.faults.harness import TALLY, Bed, Daemon, config_text, fault_bed, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ALARM = "alarm-hallway"
CO_TITLE = "CO emergency in the Hallway"
# The daemon runs with this many descriptors (soft = hard), so the idle flood below is
# larger than everything it could ever hold open.
DAEMON_NOFILE = 1024
IDLE_FLOOD = 10_000
ALARM_WITHIN_S = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class LimitedDaemon(Daemon):
    """`roost run` with RLIMIT_NOFILE = DAEMON_NOFILE."""

    async def start(self, kill_at: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
        launcher = (
            "import resource, runpy, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({DAEMON_NOFILE}, {DAEMON_NOFILE})); "
            "sys.argv = ['roost', 'run', '--config', sys.argv[1]]; "
            "runpy.run_module('roost', run_name='__main__')"
        )
        log = self.log_path.open("ab")
        self.process = await anyio.open_process(
            [sys.executable, "-c", launcher, str(self.config)],
            stdin=None,
            stdout=log,
            stderr=log,
            env=env,
        )


@dataclass
class Target:
    """One listener: how to reach it and what a good request to it is."""

    name: str
    connect: Callable[[], socket.socket]
    good_request: bytes
    works: Callable[[], Awaitable[bool]]


@dataclass
class Site:
    bed: Bed
    netatmo: netatmo.NetatmoSimulator
    targets: dict[str, Target]
    arrivals: list[tuple[float, str]]

    def alive(self) -> bool:
        process = self.bed.daemon.process
        return process is not None and process.returncode is None


@asynccontextmanager
async def attacked_site(tmp_path: Path) -> AsyncIterator[Site]:
    async with fault_bed(tmp_path) as bed, netatmo.serve(SimHome.demo()) as cloud:
        metrics_port, webhook_port = free_port(), free_port()
        socket_path = tmp_path / "control.sock"
        text = config_text(bed.cloud.url, bed.cloud.token, bed.sink.url, bed.state_dir, bed_rules())
        # Each attack raises and clears CO: more pushes than the default per-tag limit.
        daemon_extra = f'control_socket = "{socket_path}"\nnotify_per_tag = "100/10m"\n'
        text = text.replace("[daemon]\n", "[daemon]\n" + daemon_extra, 1)
        text += f"""
[[accounts]]
name = "flat"
provider = "netatmo"
api_url = "{cloud.url}"
client_id = "{cloud.client_id}"
client_secret = "{cloud.client_secret}"
refresh_token = "{cloud.refresh_token}"
fast_poll_s = 0.5
slow_poll_s = 2
webhook_listen = "127.0.0.1:{webhook_port}"

[metrics]
listen = "127.0.0.1:{metrics_port}"
"""
        bed.daemon.config.write_text(text)
        daemon = LimitedDaemon(bed.daemon.config, bed.daemon.log_path)
        bed.daemon = daemon
        arrivals: list[tuple[float, str]] = []
        bed.sink.on_receive = lambda p: arrivals.append((time.monotonic(), str(p.get("title"))))
        site = Site(bed, cloud, targets(socket_path, metrics_port, webhook_port, cloud), arrivals)
        await daemon.start()
        await wait_for(lambda: socket_path.exists())
        await wait_for_accounts(socket_path)
        yield site


def bed_rules() -> Path:
    from tests.faults.harness import RULES

    return RULES


async def wait_for_accounts(socket_path: Path, timeout_s: float = 30.0) -> None:
    with anyio.fail_after(timeout_s):
        while not await accounts_connected(socket_path):
            await anyio.sleep(0.2)


async def accounts_connected(socket_path: Path) -> bool:
    try:
        answer = await control.request(socket_path, {"command": "status"})
    except control.ControlError:
        return False
    states = {a["name"]: a["state"] for a in answer["accounts"]}
    return states == {"home": "connected", "flat": "connected"}


def targets(
    socket_path: Path, metrics_port: int, webhook_port: int, cloud: netatmo.NetatmoSimulator
) -> dict[str, Target]:
    body = json.dumps({"push_type": "NACamera-movement"}).encode()
    webhook_request = (
        f"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        f"X-Netatmo-secret: {sign(cloud.client_secret, body)}\r\n\r\n"
    ).encode() + body

    def unix() -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect(str(socket_path))
        return s

    def tcp(port: int) -> Callable[[], socket.socket]:
        def connect() -> socket.socket:
            s = socket.socket()
            s.setblocking(False)
            with suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            return s

        return connect

    async def control_works() -> bool:
        return await accounts_connected(socket_path)

    async def metrics_work() -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
        return response.status_code == 200 and "roost_account_connected" in response.text

    async def webhook_works() -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(
                f"http://127.0.0.1:{webhook_port}/webhook",
                content=body,
                headers={"X-Netatmo-secret": sign(cloud.client_secret, body)},
            )
        return response.status_code == 200

    return {
        "control": Target("control", unix, b'{"command":"status"}\n', control_works),
        "metrics": Target(
            "metrics", tcp(metrics_port), b"GET /metrics HTTP/1.1\r\n\r\n", metrics_work
        ),
        "webhook": Target("webhook", tcp(webhook_port), webhook_request, webhook_works),
    }


# ---- the attacks: each keeps the sockets it holds in `opened` (closed by the caller) ---

ATTACK_S = 2.0  # the short attacks repeat this long, so the alarm is raised in the middle


async def early_hang_up(target: Target, opened: list[socket.socket]) -> None:
    deadline = time.monotonic() + ATTACK_S
    while time.monotonic() < deadline:
        with suppress(OSError):
            s = target.connect()
            await anyio.wait_writable(s)
            s.send(target.good_request)
            s.close()  # without reading the answer
        await anyio.sleep(0.002)


async def idle_flood(target: Target, opened: list[socket.socket]) -> None:
    full_backlog = 0
    for n in range(IDLE_FLOOD):
        try:
            opened.append(target.connect())
        except BlockingIOError:  # a full backlog: the attack is as big as the kernel allows
            full_backlog += 1
        if n % 200 == 0:
            await anyio.lowlevel.checkpoint()
    assert len(opened) + full_backlog == IDLE_FLOOD


async def slowloris(target: Target, opened: list[socket.socket]) -> None:
    for _ in range(100):
        with suppress(OSError):
            opened.append(target.connect())
    for byte in target.good_request[:10]:
        for s in opened:
            with suppress(OSError):
                s.send(bytes([byte]))
        await anyio.sleep(0.3)


async def garbage(target: Target, opened: list[socket.socket]) -> None:
    deadline = time.monotonic() + ATTACK_S
    n = 0
    while time.monotonic() < deadline:
        n += 1
        with suppress(OSError):
            s = target.connect()
            await anyio.wait_writable(s)
            s.send(os.urandom(512) + b"\r\n\r\n\n" + bytes([n % 256]) * 64 + b"\n\xff\xfe\x00\n")
            await anyio.sleep(0.01)
            s.close()


async def oversize(target: Target, opened: list[socket.socket]) -> None:
    for _ in range(20):
        with suppress(OSError):
            s = target.connect()
            await anyio.wait_writable(s)
            opened.append(s)
            with anyio.move_on_after(0.2):
                sent = 0
                while sent < 4 * 1024 * 1024:  # no newline, no end of head
                    await anyio.wait_writable(s)
                    sent += s.send(b"A" * 65536)


ATTACKS: dict[str, Callable[[Target, list[socket.socket]], Awaitable[None]]] = {
    "early hang-up": early_hang_up,
    "idle flood": idle_flood,
    "slowloris": slowloris,
    "garbage": garbage,
    "oversize line": oversize,
}


async def under_attack(
    site: Site, target: Target, attack: Any
) -> tuple[float, list[socket.socket]]:
    """Start the attack, raise the alarm while it goes on; (alarm latency, held sockets)."""
    opened: list[socket.socket] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(attack, target, opened)
        await anyio.sleep(0.5)
        latency = await alarm_latency(site)
    return latency, opened


async def alarm_latency(site: Site) -> float:
    """Raise CO, see it pushed, clear it again; seconds from raise to push."""
    before = len(site.arrivals)
    raised = time.monotonic()
    site.bed.home.set_co(ALARM, "emergency")
    await wait_for(lambda: any(t == CO_TITLE for _, t in site.arrivals[before:]), timeout_s=10)
    arrived = next(at for at, t in site.arrivals[before:] if t == CO_TITLE)
    site.bed.home.set_co(ALARM, "ok")
    await wait_for(lambda: "CO cleared in the Hallway" in [t for _, t in site.arrivals[before:]])
    return arrived - raised


@pytest.mark.parametrize("listener", ["control", "metrics", "webhook"])
async def test_a_listener_survives_its_neighbours(tmp_path: Path, listener: str) -> None:
    async with attacked_site(tmp_path) as site:
        target = site.targets[listener]
        assert await target.works()
        for attack_name, attack in ATTACKS.items():
            opened: list[socket.socket] = []
            try:
                latency, opened = await under_attack(site, target, attack)
                assert site.alive(), f"{listener}: the daemon died during {attack_name}"
                assert await accounts_connected_soon(site), f"{listener}: {attack_name}"
            finally:
                for s in opened:
                    s.close()
            print(f"{listener} under {attack_name}: alarm pushed in {latency:.3f} s")
            assert latency < ALARM_WITHIN_S, f"{listener} {attack_name}: alarm took {latency:.2f} s"
            await works_again(target, attack_name)
            TALLY.faults[f"listener {listener}: {attack_name}"] += 1
            TALLY.listener_attacks_survived += 1
        log = site.bed.daemon.log()
        assert "Too many open files" not in log
        assert "Traceback" not in log, log[-3000:]


async def accounts_connected_soon(site: Site) -> bool:
    """Both accounts connected, asked over the control socket (which may be under attack:
    it answers once its attackers' deadlines have passed)."""
    with anyio.move_on_after(20):
        while not await site.targets["control"].works():
            await anyio.sleep(0.5)
        return True
    return False


async def works_again(target: Target, attack: str) -> None:
    with anyio.fail_after(20):
        while True:
            with suppress(httpx.HTTPError, OSError):
                if await target.works():
                    return
            await anyio.sleep(0.5)
