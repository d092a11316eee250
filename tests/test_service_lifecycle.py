"""The daemon as systemd runs it, as a real subprocess with a fake NOTIFY_SOCKET: SIGHUP
reloads a changed rule (RELOADING=1 … READY=1), SIGTERM drains in-flight commands (or
records them) and exits 0, a frozen event loop stops the watchdog pings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink
from roost.store.sqlite import Store
from tests.faults.harness import RULES, config_text

pytestmark = pytest.mark.anyio

STRUCTURE = "structure-home"
AWAY_ECO = (RULES / "away_eco.py").read_text()


@dataclass
class Notifications:
    """The test's end of NOTIFY_SOCKET: every datagram, with when it arrived."""

    path: Path
    messages: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    async def collect(self) -> None:
        while True:
            await anyio.wait_readable(self.sock)
            with suppress(BlockingIOError):
                self.messages.append((time.monotonic(), self.sock.recv(4096).decode()))

    def texts(self) -> list[str]:
        return [m for _, m in self.messages]

    def count(self, field_: str) -> int:
        return sum(field_ in m.split("\n") for m in self.texts())

    async def wait(self, field_: str, count: int = 1, timeout_s: float = 20.0) -> None:
        with anyio.fail_after(timeout_s):
            while self.count(field_) < count:
                await anyio.sleep(0.02)


@dataclass
class Bed:
    tmp: Path
    cloud: nest_wwn.NestWwnSimulator
    home: SimHome
    sink: NotificationSink
    config: Path
    rules: Path
    state: Path
    notify: Notifications
    process: Process
    log: Path

    async def roost(self, *args: str, timeout_s: float = 20.0) -> subprocess.CompletedProcess[str]:
        """A `roost` command, as a person would type it."""
        with anyio.fail_after(timeout_s):
            result = await anyio.run_process(
                [sys.executable, "-m", "roost", *args, "--config", str(self.config)],
                check=False,
                env=clean_env(),
            )
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )

    async def stop(self, timeout_s: float = 20.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(timeout_s):
            return await self.process.wait()

    async def journal_outcomes(self) -> dict[str, list[str]]:
        """command id → its outcomes in order, from the store the daemon left behind."""
        store = Store.open(self.state)
        try:
            entries = await store.journal(10_000, "command")
        finally:
            store.close()
        found: dict[str, list[str]] = {}
        for entry in entries:
            found.setdefault(entry.body["command"], []).append(entry.body["outcome"])
        return found


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "NOTIFY_"))}


@asynccontextmanager
async def daemon(
    tmp_path: Path, rules: dict[str, str], extra: str = "", env: dict[str, str] | None = None
) -> AsyncIterator[Bed]:
    home = SimHome.demo()
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in rules.items():
        (rules_dir / name).write_text(text)
    state = tmp_path / "state"
    async with (
        nest_wwn.serve(home, keepalive_s=0.5) as cloud,
        serve_sink() as sink,
        anyio.create_task_group() as tg,
    ):
        config = tmp_path / "roost.toml"
        config.write_text(config_text(cloud.url, cloud.token, sink.url, state, rules_dir) + extra)
        notify = Notifications(tmp_path / "notify.sock")
        tg.start_soon(notify.collect)
        environ = clean_env() | {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "400000"}
        environ |= env or {}
        log = tmp_path / "daemon.log"
        with log.open("ab") as out:
            process = await anyio.open_process(
                [sys.executable, "-m", "roost", "run", "--config", str(config)],
                env=environ,
                stdout=out,
                stderr=out,
            )
        bed = Bed(tmp_path, cloud, home, sink, config, rules_dir, state, notify, process, log)
        try:
            await notify.wait("READY=1")
            yield bed
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                    await process.wait()
                notify.sock.close()
                tg.cancel_scope.cancel()


async def wait_for(predicate: object, timeout_s: float = 20.0) -> None:
    with anyio.fail_after(timeout_s):
        while not predicate():  # type: ignore[operator]
            await anyio.sleep(0.05)


# ---- SIGHUP --------------------------------------------------------------------------

PORCH = """
from roost import rule, when

@rule(on=when("motion"))
async def porch_light(event, home):
    await home.notify("motion")
"""


async def test_sighup_reloads_a_changed_rule(tmp_path: Path) -> None:
    async with daemon(tmp_path, {"away.py": AWAY_ECO}) as bed:
        before = (await bed.roost("status", "--json")).stdout
        assert '"eco_when_away"' in before
        assert "porch_light" not in before
        (bed.rules / "porch.py").write_text(PORCH)
        readies = bed.notify.count("READY=1")
        bed.process.send_signal(signal.SIGHUP)
        await bed.notify.wait("READY=1", readies + 1)
        texts = bed.notify.texts()
        reloading = next(i for i, m in enumerate(texts) if "RELOADING=1" in m.split("\n"))
        ready = [i for i, m in enumerate(texts) if "READY=1" in m.split("\n")][-1]
        assert reloading < ready
        assert "2 rules" in texts[ready]
        after = (await bed.roost("status", "--json")).stdout
        assert '"porch_light"' in after
        assert '"eco_when_away"' in after
        assert await bed.stop() == 0


# ---- the watchdog --------------------------------------------------------------------

FREEZE = """
import time
from pathlib import Path
from roost import every, rule

FLAG = Path({flag!r})

@rule(on=every("1s"))
async def freezer(event, home):
    if FLAG.exists():
        while True:  # a rule that never awaits: the whole event loop stops
            time.sleep(0.05)
"""


async def test_a_frozen_loop_stops_the_watchdog_pings(tmp_path: Path) -> None:
    flag = tmp_path / "freeze-now"
    rules = {"freeze.py": FREEZE.format(flag=str(flag))}
    # A freeze roost cannot stop (the rule block budget would stop this one at 0.5 s).
    unstoppable = {"ROOST_DAEMON__RULE_BLOCK_BUDGET_S": "10"}
    async with daemon(tmp_path, rules, env=unstoppable) as bed:
        await bed.notify.wait("WATCHDOG=1", 3)  # pinging every 0.2 s while healthy
        frozen_at = time.monotonic()
        flag.touch()
        await anyio.sleep(3.0)
        pings = [at for at, m in bed.notify.messages if "WATCHDOG=1" in m.split("\n")]
        last = max(pings)
        assert last < frozen_at + 1.5, "the rule fires within 1 s and freezes the loop"
        assert time.monotonic() - last > 1.4, "no ping for well over WatchdogSec (0.4 s)"
        assert bed.process.returncode is None  # systemd would now SIGABRT it
        bed.process.kill()


# ---- SIGTERM drains ------------------------------------------------------------------

RETRY_FAST = "\n[dispatch]\nretry_initial_s = 0.5\nretry_max_s = 1.0\n"


async def test_sigterm_lets_in_flight_commands_finish_then_exits_0(tmp_path: Path) -> None:
    async with daemon(tmp_path, {"away.py": AWAY_ECO}, RETRY_FAST) as bed:
        bed.cloud.fail_next("write", 2, 503)
        bed.home.set_away(STRUCTURE, True)
        await wait_for(lambda: sum(r.status == 503 for r in bed.cloud.requests) >= 2)
        assert await bed.stop() == 0  # both commands are waiting for their retry now
    outcomes = await bed.journal_outcomes()
    assert len(outcomes) == 2
    for sequence in outcomes.values():
        assert sequence[0] == "queued"
        assert sequence[-1] == "confirmed", sequence
    ids = ("thermostat-living-room", "thermostat-bedroom")
    modes = {i: bed.home.thermostat(i).mode for i in ids}
    assert set(modes.values()) == {"eco"}, modes
    assert '"abandoned": 0' in bed.log.read_text()


async def test_a_command_still_open_at_the_drain_deadline_is_recorded(tmp_path: Path) -> None:
    drain = {"ROOST_DAEMON__DRAIN_TIMEOUT_S": "1"}
    async with daemon(tmp_path, {"away.py": AWAY_ECO}, RETRY_FAST, env=drain) as bed:
        bed.cloud.fail_next("write", 100, 503)
        bed.home.set_away(STRUCTURE, True)
        await wait_for(lambda: sum(r.status == 503 for r in bed.cloud.requests) >= 2)
        started = time.monotonic()
        assert await bed.stop() == 0
        assert time.monotonic() - started < 6
    outcomes = await bed.journal_outcomes()
    assert len(outcomes) == 2
    for sequence in outcomes.values():
        assert sequence[-1] == "failed", sequence  # sent, never confirmed: recorded as such
    assert "roost stopped before the device confirmed it" in bed.log.read_text()
