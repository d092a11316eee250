"""The fault suite's test bed: the simulated cloud and the push sink run in the test, the
daemon runs as a real subprocess (`python -m roost run`) that can be killed with SIGKILL,
and every injected fault and its consequences are tallied for the closing summary."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import Process

from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink
from tests.faults.invariants import Judge

RULES = Path(__file__).parent.parent.parent / "rules"


@dataclass
class Tally:
    """What the suite injected and what it cost. Printed at the end of the run."""

    faults: Counter[str] = field(default_factory=Counter)
    events_lost: int = 0
    notifications_lost: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)  # kill point → duplicates
    # Writes that reached the simulator and broke a guard invariant, judged there
    # (tests/faults/invariants.py), in every fault test.
    unsafe_commands: int = 0
    listener_attacks_survived: int = 0
    alarm_pushes_lost: int = 0
    # Reached the sink more than 1 s later than the same daemon's undisturbed alarm push.
    alarm_pushes_delayed: int = 0

    def summary(self) -> str:
        dupes = sum(self.duplicates.values())
        where = ", ".join(f"{k}: {v}" for k, v in sorted(self.duplicates.items())) or "none"
        return (
            f"fault suite: {sum(self.faults.values())} faults injected, "
            f"{self.events_lost} events lost, {self.notifications_lost} notifications lost, "
            f"{dupes} notifications duplicated at the sink ({where}), "
            f"alarm pushes lost {self.alarm_pushes_lost}, "
            f"delayed over 1 s {self.alarm_pushes_delayed}, "
            f"{self.unsafe_commands} unsafe commands, "
            f"{self.listener_attacks_survived} listener attacks survived"
        )


TALLY = Tally()


def config_text(
    cloud_url: str,
    token: str,
    sink_url: str,
    state_dir: Path,
    rules: Path,
    extra: str = "",
    keepalive_timeout_s: float = 2.0,
) -> str:
    return f"""
[daemon]
rules_dir = "{rules}"
state_dir = "{state_dir}"

[log]
level = "info"
format = "json"

[[accounts]]
name = "home"
provider = "nest_wwn"
api_url = "{cloud_url}"
token = "{token}"
keepalive_timeout_s = {keepalive_timeout_s:g}

[[notify.targets]]
url = "{sink_url}"
{extra}"""


@dataclass
class Daemon:
    """`roost run` in a subprocess; its JSON log goes to a file the test can read."""

    config: Path
    log_path: Path
    process: Process | None = None
    runs: int = 0

    async def start(self, kill_at: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
        if kill_at:
            env["ROOST_FAULT_KILL_AT"] = kill_at
        self.runs += 1
        log = self.log_path.open("ab")
        self.process = await anyio.open_process(
            [sys.executable, "-m", "roost", "run", "--config", str(self.config)],
            stdin=None,
            stdout=log,
            stderr=log,
            env=env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_connected(self, connections: int, timeout_s: float = 20.0) -> None:
        """Wait for the daemon's n-th stream connection since the suite began."""
        with anyio.fail_after(timeout_s):
            while self.log().count('"state": "connected"') < connections:
                await anyio.sleep(0.05)
        await anyio.sleep(0.3)  # the first snapshot follows the connection

    async def wait_exit(self, timeout_s: float = 20.0) -> int:
        assert self.process is not None
        with anyio.fail_after(timeout_s):
            code = await self.process.wait()
        self.process = None
        return code

    async def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            with suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        with anyio.move_on_after(10):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        self.process = None


@dataclass
class Bed:
    home: SimHome
    cloud: nest_wwn.NestWwnSimulator
    sink: NotificationSink
    daemon: Daemon
    state_dir: Path
    judge: Judge
    arrivals: dict[str, list[float]] = field(default_factory=dict)  # title → monotonic times

    def titles(self) -> Counter[str]:
        return Counter(str(p.get("title")) for p in self.sink.received)

    def keys(self) -> Counter[str]:
        return Counter(str(p["_headers"].get("x-roost-dedupe-key")) for p in self.sink.received)


@asynccontextmanager
async def fault_bed(
    tmp_path: Path,
    rules: Path = RULES,
    *,
    config: str = "",
    tally: Tally = TALLY,
    keepalive_timeout_s: float = 2.0,
    **cloud: Any,
) -> AsyncIterator[Bed]:
    """The cloud, the sink and the daemon. Every write that reaches the cloud is judged
    against the guard invariants there; the unsafe ones are added to `tally`.
    `keepalive_timeout_s` is how long the daemon lets the stream stay silent."""
    home = SimHome.demo()
    async with nest_wwn.serve(home, keepalive_s=0.5, **cloud) as sim, serve_sink() as sink:
        state_dir = tmp_path / "state"
        path = tmp_path / "roost.toml"
        text = config_text(
            sim.url, sim.token, sink.url, state_dir, rules, config, keepalive_timeout_s
        )
        path.write_text(text)
        daemon = Daemon(path, tmp_path / "daemon.log")
        judge = Judge()
        sim.write_observers.append(judge)
        bed = Bed(home, sim, sink, daemon, state_dir, judge)
        sink.on_receive = lambda p: bed.arrivals.setdefault(str(p.get("title")), []).append(
            time.monotonic()
        )
        try:
            yield bed
        finally:
            tally.unsafe_commands += len(judge.unsafe)
            with anyio.CancelScope(shield=True):
                await bed.daemon.stop()  # a test may swap in its own daemon


async def wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    with anyio.fail_after(timeout_s):
        while not predicate():
            await anyio.sleep(0.05)
