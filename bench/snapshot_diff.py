"""Full-snapshot diff throughput (MB/s) for a 50-device home, next to bare JSON parsing.

    .venv/bin/python bench/snapshot_diff.py [--puts 2000] [--runs 5] [--full]

Works with Nest streams the whole document on every change: one `put` event whose data is
`{"path": "/", "data": <document>}`. The home: one structure with 40 thermostats, 6
smoke/CO alarms and 4 cameras (50 devices), as the WWN simulator writes it (the real field
names). Each put changes one thermostat's humidity, round-robin, as `stream_latency` does.

- **JSON parse**: `json.loads` of each put's data; nothing else. The yardstick.
- **snapshot diff**: what the daemon does with each put: the WWN provider's own code parses
  it, applies it to the document it holds, normalizes it into a `Home` (incrementally: only
  the device whose part changed), takes camera events, and hands the snapshot to
  `HomeState.snapshot`, which diffs it against the held home and publishes the events on
  the bus (a subscriber drains them); a put that changed only readings goes to
  `HomeState.patch` as those changes instead. Store and engine are not wired: this is the
  provider → state path.

Figures are MB of put data per CPU-second of this process (median of `--runs`; steadier than
elapsed time on a shared machine), and the ratio
snapshot diff / JSON parse against the target of ≥ 50 %. `--full` also measures the diff
with a full `normalize` of every document (how the provider worked before).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio

from common import Summary, header, load, quiet_logging
from roost.core.bus import Bus
from roost.core.clock import SystemClock
from roost.core.model import Home
from roost.providers.nest_wwn import NestWwnAccount
from roost.providers.nest_wwn.normalize import normalize
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.simulator import nest_wwn
from roost.simulator.home import SimCamera, SimHome, SimSmokeCoAlarm, SimStructure, SimThermostat
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState

ACCOUNT = "bench"
TARGET_RATIO = 0.5
THERMOSTATS, ALARMS, CAMERAS = 40, 6, 4


def build_home() -> SimHome:
    home = SimHome()
    home.add(SimStructure(id="structure-1", name="Bench house"))
    for i in range(THERMOSTATS):
        home.add(SimThermostat(f"thermostat-{i:02d}", f"Room {i}", "structure-1", f"Room {i}"))
    for i in range(ALARMS):
        home.add(SimSmokeCoAlarm(f"alarm-{i}", f"Alarm {i}", "structure-1", f"Hall {i}"))
    for i in range(CAMERAS):
        home.add(SimCamera(f"camera-{i}", f"Camera {i}", "structure-1", f"Door {i}"))
    return home


def payloads(count: int) -> list[str]:
    """The data of `count` consecutive whole-document puts, one humidity change each."""
    home = build_home()
    thermostats = list(home.thermostats.values())
    out = []
    for n in range(count):
        thermostats[n % len(thermostats)].humidity = n % 100
        home.changed()
        document = nest_wwn.document(home, token="bench-token", base_url="http://127.0.0.1:1")
        out.append(json.dumps({"path": "/", "data": document}, separators=(",", ":")))
    return out


def parse_rate(data: list[str]) -> float:
    size = sum(len(d) for d in data)
    started = time.process_time()
    for d in data:
        json.loads(d)
    return size / (time.process_time() - started) / 1e6


class FullNormalize:
    """A full `normalize` of every document, in the provider's `Normalizer`'s place."""

    readings = None  # never only readings: the whole picture each time

    def __call__(self, document: Any, problems: Any = None, edits: Any = None) -> Home:
        return normalize(document, ACCOUNT, problems)


async def diff_rate(data: list[str], full: bool) -> float:
    bus = Bus()
    inbox = bus.subscribe("engine", buffer=len(data) + 16)
    state = HomeState(bus, EchoTracker(clock=SystemClock()))
    settings = {"api_url": "http://127.0.0.1:1", "token": "bench-token"}
    provider = NestWwnProvider(NestWwnAccount(name=ACCOUNT, provider="nest_wwn", **settings))
    if full:
        provider._normalize = FullNormalize()  # type: ignore[assignment]
    try:
        first = provider._apply_put(
            data[0], state.payload_health(ACCOUNT)
        )  # the baseline (not timed)
        assert first is not None
        await provider._publish(first, state, catch_up=True)
        size = sum(len(d) for d in data[1:])
        health = state.payload_health(ACCOUNT)
        events = 0
        started = time.process_time()
        for d in data[1:]:
            update = provider._apply_put(d, health)
            assert update is not None
            await provider._publish(update, state, catch_up=False)
            while True:
                try:
                    events += len(inbox.receive_nowait())
                except anyio.WouldBlock:
                    break
        elapsed = time.process_time() - started
    finally:
        await provider.aclose()
    if events < len(data) - 1:
        raise AssertionError(f"{len(data) - 1} changed puts made only {events} events")
    return size / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--puts", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--full", action="store_true", help="also with a full normalize")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    quiet_logging(args.log_level)
    data = payloads(args.puts)
    kb = sum(len(d) for d in data) / len(data) / 1024
    header(
        "snapshot_diff: WWN whole-document put → parse → normalize → state diff → bus",
        f"{THERMOSTATS + ALARMS + CAMERAS}-device home, put data {kb:.1f} KiB, "
        f"{args.runs} runs of {args.puts} puts",
    )
    parse_rate(data[:200])  # warm-up
    parse = Summary.of([parse_rate(data) for _ in range(args.runs)])
    print(
        f"   JSON parse (json.loads):   {parse.median:7.1f} MB/s "
        f"(min {parse.min:.1f}, max {parse.max:.1f})"
    )
    modes = [False, True] if args.full else [False]
    for full in modes:
        anyio.run(diff_rate, data[:200], full)  # warm-up
        diff = Summary.of([anyio.run(diff_rate, data, full) for _ in range(args.runs)])
        ratio = diff.median / parse.median
        label = "full normalize" if full else "incremental   "
        verdict = "MEETS target" if ratio >= TARGET_RATIO else "MISSES target"
        print(
            f"   snapshot diff, {label}: {diff.median:7.1f} MB/s (min {diff.min:.1f}, "
            f"max {diff.max:.1f}) = {ratio:.0%} of JSON parse, "
            f"{diff.median * 1e6 / 1024 / kb:,.0f} puts/s; target ≥ {TARGET_RATIO:.0%}: {verdict}",
            flush=True,
        )
    print(f"   {load()} at end")


if __name__ == "__main__":
    main()
