"""Ratios to Home Assistant 2024.3.3, measured side by side (`make bench-anchor`).

    .venv/bin/python bench/anchor.py [--rounds 5] [--ha-python bench/.ha-venv/bin/python]

Method of ../shared/anchors/README.md: the same machine, one session, alternated runs (HA
automations, roost, HA state machine, roost, ...), each a fresh process, each figure a rate
per second of that process's CPU time (steadier than wall clock on a shared machine). The HA
scripts are `bench/anchor/ha_*_cpu.py`, copies of the anchors' own.

roost's figures come from `engine_harness` (one process per round, a warm-up run first):

- `fire, engine path`: engine_fire's rule (condition reads the device, body finds the
  thermostat by name and calls `set_heat`), guards and dispatcher in dry run, one outcome
  event per run. HA's action only fires an event, so
- `fire, body publishes`: the same rules, condition and index, but a body that only
  publishes one event on the bus (no command, guards or dispatcher): HA's shape.
- `fire, with store`: the engine path plus the SQLite store and journal as `Runtime` wires them.
- `no fire, humidity` / `no fire, unwatched`: engine_nomatch's two kinds (against HA's
  state machine with a tracker of 1,000 entities); the target is judged on the lower one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
HA_PYTHON = HERE / ".ha-venv" / "bin" / "python"
HA_AUTOMATION = (HERE / "anchor" / "ha_automation_bench_cpu.py", "20000")
HA_STATE = (HERE / "anchor" / "ha_state_bench_cpu.py", "200000")
CPU_RATE = re.compile(r"cpu_per_s (\d+)")

# figure → (HA anchor it is divided by, target ratio or None for a reference line)
FIGURES: dict[str, tuple[str, float | None]] = {
    "fire, engine path": ("automation", 20.0),
    "fire, body publishes": ("automation", None),
    "fire, with store": ("automation", 10.0),
    "no fire, humidity": ("state", 4.0),
    "no fire, unwatched": ("state", 4.0),
}


def ha_rate(python: Path, script: tuple[Path, str]) -> float:
    out = subprocess.run(
        [str(python), str(script[0]), script[1]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = CPU_RATE.search(out)
    if found is None:
        raise RuntimeError(f"no cpu_per_s in {script[0].name}'s output: {out!r}")
    return float(found.group(1))


def roost_rates(daemon: Path | None = None) -> dict[str, float]:
    env = dict(os.environ)
    if daemon is not None:  # another checkout's daemon code (a before/after comparison)
        env["PYTHONPATH"] = str(daemon)
    out = subprocess.run(
        [sys.executable, str(HERE / "anchor_roost.py")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    rates: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return rates


def load() -> float:
    return os.getloadavg()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ha-python", type=Path, default=HA_PYTHON)
    parser.add_argument(
        "--before",
        type=Path,
        help="also measure the daemon code in this directory (e.g. another checkout's "
        "daemon/), alternated with this one: before/after figures in one session",
    )
    args = parser.parse_args()
    if not args.ha_python.exists():
        print(f"no Home Assistant venv at {args.ha_python}: `make bench-anchor` builds it")
        return 2
    ha: dict[str, list[float]] = {"automation": [], "state": []}
    ours: dict[str, list[float]] = {name: [] for name in FIGURES}
    before: dict[str, list[float]] = {name: [] for name in FIGURES}
    loads: list[float] = []
    print("== anchor: roost against Home Assistant 2024.3.3, per CPU-second, alternated runs")
    for n in range(1, args.rounds + 1):
        loads.append(load())
        for anchor, script in (("automation", HA_AUTOMATION), ("state", HA_STATE)):
            ha[anchor].append(ha_rate(args.ha_python, script))
            if args.before is not None:
                for name, rate in roost_rates(args.before).items():
                    before[name].append(rate)
            for name, rate in roost_rates().items():
                ours[name].append(rate)
        print(
            f"   round {n}: HA automations {ha['automation'][-1]:,.0f}/s, HA state "
            f"{ha['state'][-1]:,.0f}/s, roost fire {ours['fire, engine path'][-1]:,.0f}/s; "
            f"load {loads[-1]:.2f}",
            flush=True,
        )
    loads.append(load())
    print(
        f"   HA automation runs per CPU-second: median {statistics.median(ha['automation']):,.0f}"
    )
    print(f"   HA state changes per CPU-second:   median {statistics.median(ha['state']):,.0f}")
    for name, (anchor, target) in FIGURES.items():
        rate = statistics.median(ours[name])
        ratio = rate / statistics.median(ha[anchor])
        verdict = (
            ""
            if target is None
            else f"; target ≥ {target:g}×: "
            + ("MEETS target" if ratio >= target else "MISSES target")
        )
        print(f"   {name:<22} {rate:>9,.0f}/s = {ratio:5.1f}× HA {anchor}{verdict}")
        if args.before is not None:
            old = statistics.median(before[name])
            was = old / statistics.median(ha[anchor])
            print(f"   {'':<13}(before) {old:>9,.0f}/s = {was:5.1f}× HA {anchor}")
    print(f"   1-min load average {min(loads):.2f}–{max(loads):.2f} over the rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
