"""Stream → command latency over loopback at a steady 1,000 changes per second.

    .venv/bin/python bench/stream_latency.py [--mode both|limits|unthrottled] [--rate 1000]
        [--thermostats 10] [--warmup 2] [--window 4] [--runs 5] [--log-level warning]

Two processes: `stream_sim.py` runs the real WWN simulator (`roost.simulator.nest_wwn.serve`)
with a home of 10 heating thermostats and changes their ambient temperatures round-robin at
`--rate` a second; this process runs the real daemon (`roost.runtime.Runtime`: WWN provider
over HTTP/SSE on loopback, state, bus, engine, dispatcher, store, journal) with one rule:

    when("temperature") → home.device().set_heat(event.new)

A change travels: SimHome → SSE `put` of the whole document → provider (parse, normalize) →
state diff → bus → engine → rule run → guards → dispatcher lane (→ vendor write limits →
provider PUT → the simulator applies the write → echo).

Figures, per change, stamped with `time.time()` (one clock for both processes):

- change → command decided: from the change of SimHome (simulator process) until
  `set_heat` returned in the rule body: the guards passed and the dispatcher queued the
  command in its device's lane (outcome QUEUED; or refused/dropped, which is reported).
- change → write applied: from the change until the simulator applied the setpoint write;
  a write is matched to its change by thermostat and value.

Modes:

- `limits`: the daemon exactly as configured by default. The WWN provider's vendor write
  limits (per device 3 at once then 1 a minute; per account 10 at once then 1 every 6 s)
  delay almost every write for minutes, so change → write is not measurable at 1,000/s and
  only change → command decided is reported.
- `unthrottled`: the provider's write limits are lifted (`WriteLimits()`) and the write
  budget guard is raised to 10⁹ through `guards.allow_loosening`, so every command is
  really sent (a newer command to a device still supersedes one waiting in its lane, and
  each write waits for its echo as in production). Both figures are reported.

The load runs `--warmup` s (discarded), then `--runs` windows of `--window` s; each window
is one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import SecretStr

from common import Summary, header, quiet_logging, verdict
from roost.api import RuleHome
from roost.config import GuardSettings, NestWwnAccount, Settings
from roost.events import TemperatureChanged
from roost.providers.base import Provider, WriteLimits
from roost.providers.nest_wwn import NestWwnProvider
from roost.rules import Rule, when
from roost.runtime import Runtime

ACCOUNT = "bench"
TARGET_P99_MS = 5.0
SIM_SCRIPT = Path(__file__).with_name("stream_sim.py")

Record = tuple[str, float, float]  # device, °C, time.time()


@dataclass
class Decisions:
    """What the rule saw: per run, the event's stamp and when its command was decided."""

    decided: list[Record] = field(default_factory=list)
    stamped: dict[tuple[str, float, float], float] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def rule(self) -> Rule:
        async def follow(event: TemperatureChanged, home: RuleHome) -> None:
            """Heat to the temperature just measured: one command per change."""
            thermostat = home.device()
            if thermostat is None or event.new is None or event.device is None:
                return
            outcome = await thermostat.set_heat(event.new)
            now = time.time()
            self.decided.append((event.device, event.new, now))
            self.stamped[(event.device, event.new, now)] = event.at.timestamp()
            self.outcomes[str(outcome.outcome)] += 1

        return Rule(name="follow the temperature", triggers=(when("temperature"),), body=follow)


def settings(url: str, token: str, state_dir: Path, unthrottled: bool) -> Settings:
    s = Settings()
    s.daemon.rules_dir = state_dir / "rules"
    s.daemon.state_dir = state_dir
    s.accounts = [
        NestWwnAccount(name=ACCOUNT, provider="nest_wwn", api_url=url, token=SecretStr(token))
    ]
    if unthrottled:
        s.guards = GuardSettings(allow_loosening=True, writes_per_device_per_hour=10**9)
    return s


def providers(s: Settings, unthrottled: bool) -> list[Provider] | None:
    """None: the daemon builds its providers from the settings, as `roost run` does."""
    if not unthrottled:
        return None
    account = s.accounts[0]
    assert account.token is not None
    provider = NestWwnProvider(
        account.name,
        api_url=account.api_url,
        token=account.token.get_secret_value(),
        write_limits=WriteLimits(),
    )
    return [provider]


async def run_stack(
    args: argparse.Namespace, unthrottled: bool
) -> tuple[dict[str, Any], Decisions, dict[str, int]]:
    """Start the simulator process and the daemon, run the load; both sides' records and
    the engine's statistics for the rule."""
    command = [
        sys.executable,
        str(SIM_SCRIPT),
        f"--thermostats={args.thermostats}",
        f"--rate={args.rate}",
        f"--seconds={args.warmup + args.runs * args.window}",
    ]
    decisions = Decisions()
    async with await anyio.open_process(command, stdin=PIPE, stdout=PIPE) as sim:
        assert sim.stdin is not None
        assert sim.stdout is not None
        out = BufferedByteReceiveStream(sim.stdout)
        ready = (await out.receive_until(b"\n", 1024)).decode().split()
        if ready[:1] != ["READY"]:
            raise RuntimeError(f"simulator did not start: {ready}")
        with tempfile.TemporaryDirectory() as state_dir:
            s = settings(ready[1], ready[2], Path(state_dir), unthrottled)
            runtime = Runtime(s, providers(s, unthrottled))
            rule = decisions.rule()
            runtime.engine.load([rule])
            async with anyio.create_task_group() as tg:
                tg.start_soon(runtime.run)
                with anyio.fail_after(10):
                    while not runtime.state.account(ACCOUNT).baseline:
                        await anyio.sleep(0.01)
                await sim.stdin.send(b"go\n")
                line = await out.receive_until(b"\n", 100 * 1024 * 1024)
                tg.cancel_scope.cancel()
            stats = {k: v for k, v in vars(runtime.engine.stats[rule.name]).items() if v}
    return json.loads(line), decisions, stats


# ---- matching and statistics ----------------------------------------------------------------


def match(changes: Sequence[Record], found: Sequence[Record]) -> list[Record | None]:
    """For each change, the record (decision or write) it caused, or None.

    Per thermostat, commands are decided and written in the order of the changes, so each
    record belongs to the next change (after the last one matched) with the same value."""
    by_device: dict[str, list[int]] = defaultdict(list)
    for i, (device, _, _) in enumerate(changes):
        by_device[device].append(i)
    matched: list[Record | None] = [None] * len(changes)
    cursor: dict[str, int] = defaultdict(int)
    for record in sorted(found, key=lambda r: r[2]):
        device, value, at = record
        indexes = by_device.get(device, [])
        for pos in range(cursor[device], len(indexes)):
            i = indexes[pos]
            if changes[i][1] == value and changes[i][2] <= at:
                matched[i] = record
                cursor[device] = pos + 1
                break
    return matched


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, min(len(sorted_values), round(q * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    samples: int
    lost: int  # changes for which no decision or write arrived

    @classmethod
    def of(cls, delays_s: Sequence[float | None]) -> Latency:
        ms = sorted(d * 1000 for d in delays_s if d is not None)
        lost = sum(1 for d in delays_s if d is None)
        if not ms:
            return cls(*(4 * [float("inf")]), samples=0, lost=lost)  # type: ignore[misc]
        q = (percentile(ms, 0.50), percentile(ms, 0.99), percentile(ms, 0.999))
        return cls(*q, max_ms=ms[-1], samples=len(ms), lost=lost)

    def line(self) -> str:
        return (
            f"p50 {self.p50_ms:7.2f}  p99 {self.p99_ms:7.2f}  p999 {self.p999_ms:7.2f}  "
            f"max {self.max_ms:7.2f} ms ({self.lost} lost)"
        )


def delay(change: Record, record: Record | None) -> float | None:
    return None if record is None else record[2] - change[2]


def report(
    mode: str,
    args: argparse.Namespace,
    result: dict[str, Any],
    d: Decisions,
    stats: dict[str, int],
) -> None:
    changes: list[Record] = [(c[0], c[1], c[2]) for c in result["changes"]]
    writes: list[Record] = [(w[0], w[1], w[2]) for w in result["writes"]]
    decided = match(changes, d.decided)
    written = match(changes, writes) if mode == "unthrottled" else None
    figures: dict[str, list[Latency]] = {"change → command decided": []}
    if written is not None:
        figures["change → write applied"] = []
    start = changes[0][2] + args.warmup
    for n in range(args.runs):
        lo, hi = start + n * args.window, start + (n + 1) * args.window
        chosen = [i for i, c in enumerate(changes) if lo <= c[2] < hi]
        runs = [Latency.of([delay(changes[i], decided[i]) for i in chosen])]
        if written is not None:
            runs.append(Latency.of([delay(changes[i], written[i]) for i in chosen]))
        for figure, latency in zip(figures.values(), runs, strict=True):
            figure.append(latency)
    print(
        f"   -- mode {mode}: rule {stats}, decisions {dict(d.outcomes)}; "
        f"{len(changes)} changes, {len(writes)} writes applied, {result['refused']} refused"
    )
    for name, latencies in figures.items():
        print(f"   {name}:")
        for n, latency in enumerate(latencies, 1):
            print(f"     run {n}: {latency.line()}")
        for q in ("p50", "p99", "p999"):
            s = Summary.of([getattr(latency, f"{q}_ms") for latency in latencies])
            line = f"     {q:<4} median {s.median:7.2f} ms (min {s.min:.2f}, max {s.max:.2f})"
            if q == "p99":
                target = verdict(s.median, TARGET_P99_MS, higher_is_better=False)
                line += f"; target ≤ {TARGET_P99_MS:g} ms: {target}"
            print(line)
    print("     legs, median / p99 over all runs (ms): " + legs(changes, decided, written, d))
    sys.stdout.flush()


def legs(
    changes: Sequence[Record],
    decided: Sequence[Record | None],
    written: Sequence[Record | None] | None,
    d: Decisions,
) -> str:
    """Where the time goes: stream (change → the provider's stamp on the event), engine
    (stamp → command decided) and, when sending, write (decided → write applied)."""
    parts: dict[str, list[float]] = {"stream": [], "engine": [], "write": []}
    for i, change in enumerate(changes):
        decision = decided[i]
        if decision is None:
            continue
        stamped = d.stamped[decision]
        parts["stream"].append(stamped - change[2])
        parts["engine"].append(decision[2] - stamped)
        write = written[i] if written is not None else None
        if write is not None:
            parts["write"].append(write[2] - decision[2])
    shown = []
    for name, values in parts.items():
        if values:
            values.sort()
            median, p99 = statistics.median(values) * 1000, percentile(values, 0.99) * 1000
            shown.append(f"{name} {median:.2f} / {p99:.2f}")
    return ", ".join(shown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("both", "limits", "unthrottled"), default="both")
    parser.add_argument("--rate", type=float, default=1000.0, help="changes per second")
    parser.add_argument("--thermostats", type=int, default=10)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds, discarded")
    parser.add_argument("--window", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    quiet_logging(args.log_level)
    header(
        "stream_latency: SimHome change → SSE → daemon → rule → guards → PUT → write applied",
        f"simulator in its own process; {args.thermostats} thermostats, {args.rate:g} "
        f"changes/s, {args.warmup:g} s warm-up + {args.runs} runs of {args.window:g} s, "
        f"log level {args.log_level}",
    )
    modes = ("limits", "unthrottled") if args.mode == "both" else (args.mode,)
    for mode in modes:
        result, decisions, stats = anyio.run(run_stack, args, mode == "unthrottled")
        report(mode, args, result, decisions, stats)


if __name__ == "__main__":
    main()
