"""A fleet under test: N simulated WWN homes behind one HTTP server (home i under `/h<i>`,
each with its own token), and `roost run` worker processes sharing one PostgreSQL store.

The simulator side keeps what a vendor would see: the open streams of each home (so two
workers serving one account at once shows), and every write with its home."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from roost.simulator import http
from roost.simulator.home import SimHome, SimSmokeCoAlarm, SimStructure, SimThermostat
from roost.simulator.nest_wwn import NestWwnSimulator

RULE = """
from roost import rule, when


@rule(on=when("co", to=["warning", "emergency"]))
async def co_alarm(event, home):
    alarm = home.device()
    await home.notify(f"CO {event.account}", f"{alarm.name}: {event.new}", tags=["urgent"])
    for thermostat in home.thermostats(structure=event.structure):
        await thermostat.set_mode("off")


@rule(on=when("co", to="warning", hold="6s"))
async def co_held(event, home):
    await home.notify(f"CO held {event.account}", "still there after 6 s", tags=["urgent"])
"""


def token(i: int) -> str:
    return f"c.fleet-{i}"


def home(i: int) -> SimHome:
    h = SimHome()
    sid = f"s-{i}"
    h.add(SimStructure(id=sid, name=f"Home {i}"))
    h.add(SimThermostat(f"t-{i}", "Hall", sid, "Hall"))
    h.add(SimSmokeCoAlarm(f"a-{i}", "Hall alarm", sid, "Hall"))
    return h


class Homes:
    def __init__(self, count: int, keepalive_s: float = 30) -> None:
        self.sims = [
            NestWwnSimulator(home(i), token=token(i), keepalive_s=keepalive_s, redirect=False)
            for i in range(count)
        ]
        self.streams: Counter[int] = Counter()  # home -> streams open (as far as seen)
        self.opened: dict[int, list[float]] = {}  # home -> when each stream opened
        self.closed: dict[int, list[float]] = {}  # home -> when each stream was seen ending

    async def handle(self, request: http.Request) -> http.Response | http.StreamingResponse:
        prefix, _, rest = request.path.lstrip("/").partition("/")
        i = int(prefix[1:]) if prefix[1:].isdigit() else len(self.sims)
        if i >= len(self.sims):
            return http.Response(404, {"error": "no such home"})
        path = "/" + rest
        target = path + request.target.removeprefix(request.path)
        answer = await self.sims[i].handle(dataclasses.replace(request, path=path, target=target))
        if isinstance(answer, http.StreamingResponse):
            return dataclasses.replace(answer, body=self._counted(i, answer.body))
        return answer

    async def _counted(self, i: int, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        self.streams[i] += 1
        self.opened.setdefault(i, []).append(anyio.current_time())
        try:
            async for chunk in body:
                yield chunk
        finally:
            self.streams[i] -= 1
            self.closed.setdefault(i, []).append(anyio.current_time())

    def connected(self) -> int:
        return sum(1 for n in self.streams.values() if n > 0)

    def writes(self) -> dict[int, int]:
        return {i: len(s.writes) for i, s in enumerate(self.sims) if s.writes}


def worker_config(
    directory: Path,
    name: str,
    url: str,
    pg_url: str,
    sink_url: str,
    homes: int,
    rule: str = RULE,
    lock_timeout_s: float = 2,
) -> Path:
    rules = directory / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "fleet.py").write_text(rule)
    state = directory / name
    state.mkdir()
    accounts = "".join(
        f'\n[[accounts]]\nname = "h{i}"\nprovider = "nest_wwn"\napi_url = "{url}/h{i}"\n'
        f'token = "{token(i)}"\n'
        for i in range(homes)
    )
    path = directory / f"{name}.toml"
    path.write_text(
        f'[daemon]\nrules_dir = "{rules}"\nstate_dir = "{state}"\n'
        f'control_socket = "{state}/control.sock"\n'
        f'[log]\nlevel = "info"\nformat = "json"\n'
        f'[store]\nurl = "{pg_url}"\n'
        f'[cluster]\nenabled = true\nworker = "{name}"\ncheck_s = 0.5\n'
        f"lock_timeout_s = {lock_timeout_s}\n"
        f'[[notify.targets]]\nurl = "{sink_url}"\n{accounts}'
    )
    return path


def start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "roost", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=env,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def writers_by_epoch(sims: Sequence[NestWwnSimulator]) -> dict[int, dict[int | None, set[str]]]:
    """What the vendor saw: for each home, the workers whose writes arrived in each of its
    ownership epochs (X-Roost-Worker / X-Roost-Epoch; a write without them: epoch None,
    worker "?")."""
    seen: dict[int, dict[int | None, set[str]]] = {}
    for i, sim in enumerate(sims):
        for request in sim.requests:
            by_epoch = seen.setdefault(i, {})
            by_epoch.setdefault(request.epoch, set()).add(request.worker or "?")
    return seen


def double_writers(sims: Sequence[NestWwnSimulator]) -> dict[int, dict[int | None, set[str]]]:
    """Homes written by two workers within one epoch, or by a writer naming no epoch."""
    return {
        i: {
            epoch: workers
            for epoch, workers in by_epoch.items()
            if len(workers) > 1 or epoch is None
        }
        for i, by_epoch in writers_by_epoch(sims).items()
        if any(len(workers) > 1 or epoch is None for epoch, workers in by_epoch.items())
    }


def stale_writes(sims: Sequence[NestWwnSimulator]) -> dict[int, list[int | None]]:
    """Homes where a write from an older epoch arrived after one from a newer epoch (an
    owner that lost the account still sending): each such home's epochs, in arrival order."""
    stale: dict[int, list[int | None]] = {}
    for i, sim in enumerate(sims):
        epochs = [r.epoch for r in sim.requests]
        newest = -1
        for epoch in epochs:
            if epoch is not None and epoch < newest:
                stale[i] = epochs
                break
            newest = max(newest, epoch or -1)
    return stale


def dedupe_keys(received: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(p["_headers"].get("x-roost-dedupe-key")) for p in received)
