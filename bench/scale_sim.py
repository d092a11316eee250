"""The cloud side of `scale.py`, in its own process: N WWN homes behind one HTTP server.

Not a benchmark by itself; `scale.py` starts it. Home i (2 heating thermostats) is a
`NestWwnSimulator` of its own with its own token, served under the path prefix `/h<i>`
(so account i's `api_url` is `<url>/h<i>`): each account holds its own live SSE stream.
Keep-alives every `--keepalive` s on every stream, as the vendor sends them.

Protocol on stdin/stdout, as `stream_sim.py`:

1. prints `READY <url>` once listening;
2. on a line `go <rate> <seconds>` makes `rate` changes a second for `seconds`: change n
   sets the humidity of thermostat 0 of home n mod N to `common.reading(n)` (it names the
   change; never 0, every home's first reading, which made change 0 no change at all),
   then prints one JSON line with the time of every change (`time.time()`); this
   process's collector is off for that phase (`without_collections`);
3. on a line `streams` prints the number of open streams; on EOF it exits.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import resource
import sys
import time
from collections.abc import Awaitable

import anyio
import anyio.to_thread

from common import quiet_logging, reading
from roost.simulator import http
from roost.simulator.home import SimHome, SimStructure, SimThermostat
from roost.simulator.nest_wwn import NestWwnSimulator

THERMOSTATS = 2


def raise_fd_limit(wanted: int = 65_536) -> None:
    """Each stream is a socket: lift the open-file limit (root may lift the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def token(i: int) -> str:
    return f"c.scale-{i}"


def home(i: int) -> SimHome:
    h = SimHome()
    sid = f"structure-{i}"
    h.add(SimStructure(id=sid, name=f"Home {i}"))
    for t in range(THERMOSTATS):
        h.add(SimThermostat(f"t-{i}-{t}", f"Room {t}", sid, f"Room {t}", humidity=0))
    return h


class Homes:
    def __init__(self, count: int, keepalive_s: float) -> None:
        self.sims = [
            NestWwnSimulator(home(i), token=token(i), keepalive_s=keepalive_s, redirect=False)
            for i in range(count)
        ]

    async def handle(self, request: http.Request) -> http.Response | http.StreamingResponse:
        prefix, _, rest = request.path.lstrip("/").partition("/")
        if not prefix.startswith("h") or not prefix[1:].isdigit():
            return http.Response(404, {"error": "no such home"})
        i = int(prefix[1:])
        if i >= len(self.sims):
            return http.Response(404, {"error": "no such home"})
        path = "/" + rest
        target = path + request.target.removeprefix(request.path)
        return await self.sims[i].handle(dataclasses.replace(request, path=path, target=target))


async def generate(homes: Homes, rate: float, seconds: float) -> list[float]:
    changed_at: list[float] = []
    start = time.monotonic()
    n_homes = len(homes.sims)
    for n in range(int(rate * seconds)):
        await anyio.sleep(max(0.0, start + n / rate - time.monotonic()))
        h = homes.sims[n % n_homes].home
        h.thermostats[f"t-{n % n_homes}-0"].humidity = reading(n)  # type: ignore[assignment]
        h.changed()
        changed_at.append(time.time())
    return changed_at


async def without_collections(load: Awaitable[list[float]]) -> list[float]:
    """Run the load with this process's collector off. The cloud's own collections are not
    roost's latency, and with 10,000 streams held here a full one paused this process for
    hundreds of milliseconds, long after the changes it delayed had been stamped."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return await load
    finally:
        gc.enable()
        gc.unfreeze()


async def main(args: argparse.Namespace) -> None:
    homes = Homes(args.homes, args.keepalive)
    async with http.serve(homes.handle) as server:
        for sim in homes.sims:
            sim._server = server  # the document's camera URLs name the server
        print(f"READY {server.url}", flush=True)
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line:
                return
            words = line.split()
            if words[:1] == ["go"]:
                changes = await without_collections(
                    generate(homes, float(words[1]), float(words[2]))
                )
                print(json.dumps({"changes": changes}), flush=True)
            elif words[:1] == ["streams"]:
                print(server.open_streams, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="N WWN homes, one HTTP server")
    parser.add_argument("--homes", type=int, required=True)
    parser.add_argument("--keepalive", type=float, default=30.0)
    raise_fd_limit()
    quiet_logging()
    anyio.run(main, parser.parse_args())
