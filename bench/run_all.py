"""Run every benchmark, one after the other, each in its own process (`make bench`).

    .venv/bin/python bench/run_all.py [name ...]

With names (e.g. `engine_fire`), only those run. Extra options go to no benchmark; run a
script by itself to pass options. Exits non-zero if a benchmark crashed (a missed target
is a figure, not a failure).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = (
    "engine_fire",
    "engine_nomatch",
    "stream_latency",
    "snapshot_diff",
    "startup",
    "idle",  # RSS and CPU, with and without the web page; the first alarm push
    "scale",  # N = 100 and 1,000; the 10,000 run is `bench/scale.py --accounts 10000`
    "sse_keepalive",  # CPU per keep-alive read: what 10,000 accounts' idle CPU is made of
)


def main() -> int:
    wanted = sys.argv[1:] or list(BENCHMARKS)
    unknown = [name for name in wanted if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in wanted:
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        print(f"   ({name} took {time.monotonic() - started:.0f} s)\n", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"crashed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
