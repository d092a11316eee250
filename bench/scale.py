"""Scale: N accounts in one daemon, each with its own live WWN stream; RSS, idle CPU, latency.

    .venv/bin/python bench/scale.py                     # N = 100 and 1,000
    .venv/bin/python bench/scale.py --accounts 10000    # the 10,000-account run (~3 min)
        [--idle 10] [--rate 200] [--seconds 10] [--keepalive 30]

`scale_sim.py` (its own process) serves N WWN homes of 2 thermostats behind one HTTP server,
each with its own token; this process runs the real daemon (`roost.service.runtime.Runtime`, built
from settings with N `nest_wwn` accounts, as `roost run` builds it: providers, state, store
and journal, bus, engine, dispatcher) with one rule, `when("attribute",
attribute="humidity")`, whose body notes when it ran. Both processes lift their open-file
limit (one socket per stream each side).

Phases, each N in a fresh process:

1. connect: from `Runtime.run` until every account has its first snapshot;
2. memory: `--settle` s later (the first saves of every new home), after `settle_memory()`
   (what `roost run` does once ready), RSS from /proc minus the RSS before the runtime was
   built, divided by N (the daemon's fixed costs, a few MiB, are spread over the accounts:
   an upper bound per account);
3. idle CPU: the process's CPU time over `--idle` s with nothing changing but the
   keep-alives every `--keepalive` s on every stream (N/30 a second);
4. latency under load: `--rate` changes a second, spread round-robin over the homes, for
   `--seconds` s: change → the rule ran (one `time.time()` clock for both processes). The
   benchmark then waits until every change has its run, up to `--grace` s, and names any
   change still without one (its number and home): a lost change is a defect to chase, a
   late one (over 1 s) a stall. The collections in this phase are printed by generation:
   their pauses are what holds the p99 up (bench/README.md, round eleven). The phase starts
   seconds after `settle_memory()` froze the start-up heap, so a short one sees no full
   collection; `--seconds 60` shows more of the steady state.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE

import anyio
import httpx
from anyio.streams.buffered import BufferedByteReceiveStream

from common import change_of, header, load, quiet_logging
from roost.config.settings import Settings
from roost.core.events import AttributeChanged
from roost.core.secret import Secret
from roost.engine.rule_home import RuleHome
from roost.providers.nest_wwn import NestWwnAccount
from roost.providers.registry import ProviderContext
from roost.rules.author import Rule, when
from roost.service.collector import pace_collections, settle_memory
from roost.service.runtime import Runtime
from scale_sim import raise_fd_limit, token
from stream_latency import percentile

SIM_SCRIPT = Path(__file__).with_name("scale_sim.py")
TARGET_KIB_PER_ACCOUNT = 100.0
TARGET_IDLE_CPU = 0.02
TARGET_P99_MS = 10.0


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s() -> float:
    return time.process_time()  # user + system of every thread of this process


class GcTime:
    """A `gc.callbacks` entry: time spent in collections, and how many per generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.counts = [0, 0, 0]
        self.by_generation = [0.0, 0.0, 0.0]
        self.longest_ms = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            spent = time.perf_counter() - self._started
            self.seconds += spent
            self.longest_ms = max(self.longest_ms, spent * 1e3)
            self.counts[info["generation"]] += 1
            self.by_generation[info["generation"]] += spent

    def line(self) -> str:
        each = (
            f"{c} × {t / c * 1e3:.1f} ms" if c else "0"
            for c, t in zip(self.counts, self.by_generation, strict=True)
        )
        return "collections by generation: " + ", ".join(each)


def settings(url: str, count: int, state_dir: Path) -> Settings:
    s = Settings()
    s.daemon.rules_dir = state_dir / "rules"
    s.daemon.state_dir = state_dir
    s.accounts = [
        NestWwnAccount(
            name=f"home-{i:05d}",
            provider="nest_wwn",
            api_url=f"{url}/h{i}",
            token=Secret(token(i)),
        )
        for i in range(count)
    ]
    return s


async def one(args: argparse.Namespace) -> None:
    n = args.accounts
    ran: dict[int, float] = {}

    async def note(event: AttributeChanged, home: RuleHome) -> None:
        if isinstance(event.new, int | float):
            ran[change_of(event.new)] = time.time()

    rule = Rule(name="note", triggers=(when("attribute", attribute="humidity"),), body=note)
    command = [sys.executable, str(SIM_SCRIPT), f"--homes={n}", f"--keepalive={args.keepalive}"]
    async with await anyio.open_process(command, stdin=PIPE, stdout=PIPE) as sim:
        assert sim.stdin is not None
        assert sim.stdout is not None
        out = BufferedByteReceiveStream(sim.stdout)

        async def ask(line: str) -> str:
            assert sim.stdin is not None
            await sim.stdin.send(line.encode() + b"\n")
            return (await out.receive_until(b"\n", 100 * 1024 * 1024)).decode()

        ready = (await out.receive_until(b"\n", 1024)).decode().split()
        if ready[:1] != ["READY"]:
            raise RuntimeError(f"simulator did not start: {ready}")
        with tempfile.TemporaryDirectory(prefix="roost-bench-") as state_dir:
            gc.collect()
            before = rss_kib()
            runtime = Runtime(settings(ready[1], n, Path(state_dir)), None)
            runtime.engine.load([rule])
            accounts = [p.account for p in runtime.providers]
            async with anyio.create_task_group() as tg:
                started = time.perf_counter()
                tg.start_soon(runtime.run)
                with anyio.fail_after(600):
                    while not all(runtime.state.account(a).baseline for a in accounts):
                        await anyio.sleep(0.05)
                connected = time.perf_counter() - started
                streams = int(await ask("streams"))
                await anyio.sleep(args.settle)  # the first saves of every new home
                settle_memory()  # as `roost run` does once ready, and paces the GC
                tg.start_soon(pace_collections)
                after = rss_kib()
                per = (after - before) / n
                print(
                    f"   N = {n:>6}: all connected in {connected:.1f} s ({streams} streams open); "
                    f"RSS {after / 1024:.0f} MiB, {per:.0f} KiB per account; "
                    f"target ≤ {TARGET_KIB_PER_ACCOUNT:.0f}: "
                    f"{'MEETS' if per <= TARGET_KIB_PER_ACCOUNT else 'MISSES'} target",
                    flush=True,
                )
                collector = GcTime()
                gc.callbacks.append(collector)
                cpu0, wall0 = cpu_s(), time.perf_counter()
                await anyio.sleep(args.idle)
                idle = (cpu_s() - cpu0) / (time.perf_counter() - wall0)
                gc.callbacks.remove(collector)
                print(
                    f"   N = {n:>6}: idle CPU {idle:.2%} over {args.idle:g} s "
                    f"(keep-alives {n / args.keepalive:.0f}/s); target ≤ {TARGET_IDLE_CPU:.0%}: "
                    f"{'MEETS' if idle <= TARGET_IDLE_CPU else 'MISSES'} target; "
                    f"of it GC {collector.seconds / args.idle:.2%} ({collector.line()})",
                    flush=True,
                )
                loaded = GcTime()
                gc.callbacks.append(loaded)
                result = json.loads(await ask(f"go {args.rate} {args.seconds}"))
                count = len(result["changes"])
                with anyio.move_on_after(args.grace):
                    while len(ran) < count:
                        await anyio.sleep(0.05)
                gc.callbacks.remove(loaded)
                tg.cancel_scope.cancel()
    changes: list[float] = result["changes"]
    delays = sorted(ran[i] - t for i, t in enumerate(changes) if i in ran)
    lost = [i for i in range(len(changes)) if i not in ran]
    late = sum(1 for d in delays if d > 1.0)
    ms = [d * 1e3 for d in delays]
    p99 = percentile(ms, 0.99)
    print(
        f"   N = {n:>6}: latency change → rule ran at {args.rate:g} changes/s: "
        f"p50 {percentile(ms, 0.5):.2f}  p99 {p99:.2f}  "
        f"p999 {percentile(ms, 0.999):.2f}  max {ms[-1]:.2f} ms "
        f"({len(delays)} measured, {late} after 1 s, {len(lost)} lost within "
        f"{args.grace:g} s); target p99 ≤ {TARGET_P99_MS:g} ms: "
        f"{'MEETS' if p99 <= TARGET_P99_MS else 'MISSES'} target",
        flush=True,
    )
    print(f"   N = {n:>6}: under load, {loaded.line()} (the longest {loaded.longest_ms:.1f} ms)")
    if lost:
        named = ", ".join(f"change {i} (home {i % n})" for i in lost[:20])
        print(f"   N = {n:>6}: no run for {named}", flush=True)


def own_client(context: ProviderContext, vendor: str) -> httpx.AsyncClient:
    """What-if: each account its own client, as the providers made before they shared."""
    client = httpx.AsyncClient(follow_redirects=False)
    context._clients[f"{vendor}-{id(client)}"] = client
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="*", default=[100, 1_000])
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--keepalive", type=float, default=30.0)
    parser.add_argument("--grace", type=float, default=5.0, help="s to wait for the last runs")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--own-clients", action="store_true", help="one httpx client per account (as before)"
    )
    args = parser.parse_args()
    raise_fd_limit()
    quiet_logging(args.log_level)
    if args.one:
        args.accounts = args.accounts[0]
        if args.own_clients:
            ProviderContext.http_client = own_client  # type: ignore[method-assign]
        anyio.run(one, args)
        return
    header(
        "scale: N accounts, one live WWN stream each, in one daemon process",
        f"N = {', '.join(map(str, args.accounts))}; idle {args.idle:g} s, then "
        f"{args.rate:g} changes/s for {args.seconds:g} s",
    )
    for n in args.accounts:
        options = [
            f"--idle={args.idle}",
            f"--settle={args.settle}",
            f"--rate={args.rate}",
            f"--seconds={args.seconds}",
            f"--keepalive={args.keepalive}",
            f"--grace={args.grace}",
            f"--log-level={args.log_level}",
            *(["--own-clients"] if args.own_clients else []),
        ]
        code = subprocess.call([sys.executable, __file__, "--one", "--accounts", str(n), *options])
        if code:
            sys.exit(code)
    print(f"   {load()} at end")


if __name__ == "__main__":
    main()
