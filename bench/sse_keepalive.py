"""CPU per SSE keep-alive: the WWN provider's reader (providers/event_stream.py, an asyncio
Protocol) against the httpx path it replaced.

    .venv/bin/python bench/sse_keepalive.py [--streams 1000] [--every 1.0] [--seconds 10]

A server process (this script with `--serve`) holds `--streams` SSE streams (chunked, as the
simulator and the cloud send them), each sending WWN's keep-alive (`event: keep-alive` /
`data: null`) every `--every` s. This process reads them all, each reader alone in a fresh
process, alternated over `--rounds`:

- `httpx`: what the provider did before: one shared `httpx.AsyncClient`, `client.stream`,
  `roost.providers.sse.read_sse`, and a `move_on_after` watchdog around every event;
- `protocol`: what it does now: `event_stream.open_stream` with keep-alives skipped (they
  never wake the reading task) and its one silence timer per stream.

Figure: this process's CPU time per keep-alive (keep-alives sent over the window), and what
that makes at 10,000 accounts with WWN's 30 s keep-alives (333 a second), against the 2 %
idle target.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time

import anyio
import httpx

from common import header, load
from roost.providers.event_stream import open_stream
from roost.providers.sse import read_sse

KEEPALIVE = b"event: keep-alive\ndata: null\n\n"
KEEPALIVES_PER_S_AT_10K = 10_000 / 30
TARGET_IDLE_CPU = 0.02


def raise_fd_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(every: float) -> None:
    async def stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while True:
                await asyncio.sleep(every)
                writer.write(b"%x\r\n%s\r\n" % (len(KEEPALIVE), KEEPALIVE))
                await writer.drain()
        except ConnectionError:
            pass

    server = await asyncio.start_server(stream, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


TIMEOUTS = httpx.Timeout(5.0, read=60.0)
SILENCE_S = 60.0


async def read_httpx(client: httpx.AsyncClient, url: str) -> None:
    async with client.stream("GET", url, timeout=TIMEOUTS) as response:
        events = read_sse(response, 1 << 20)
        while True:
            with anyio.move_on_after(SILENCE_S):
                await anext(events)


async def read_protocol(client: httpx.AsyncClient, url: str) -> None:
    skip = frozenset({"keep-alive"})
    async with open_stream(
        client,
        httpx.URL(url),
        {},
        timeouts=TIMEOUTS,
        silence_s=SILENCE_S,
        max_event_bytes=1 << 20,
        skip=skip,
    ) as stream:
        await stream.next()  # never returns: keep-alives are only signs of life


async def read(kind: str, port: int, streams: int, seconds: float) -> float:
    """CPU seconds over `seconds` with every stream connected and reading."""
    url = f"http://127.0.0.1:{port}/"
    reader = read_httpx if kind == "httpx" else read_protocol
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits) as client, anyio.create_task_group() as tg:
        for _ in range(streams):
            tg.start_soon(reader, client, url)
        await anyio.sleep(3.0)  # every stream connected and reading
        started = time.process_time()
        await anyio.sleep(seconds)
        spent = time.process_time() - started
        tg.cancel_scope.cancel()
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--every", type=float, default=1.0, help="s between keep-alives")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--read", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit()
    if args.serve:
        asyncio.run(serve(args.every))
        return
    if args.read:
        print(anyio.run(read, args.read, args.port, args.streams, args.seconds), flush=True)
        return
    header(
        "sse_keepalive: CPU per keep-alive read, the Protocol reader vs httpx (before)",
        f"{args.streams} streams, a keep-alive every {args.every:g} s each, "
        f"{args.rounds} alternated rounds of {args.seconds:g} s",
    )
    command = [sys.executable, __file__, "--serve", f"--every={args.every}"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        costs: dict[str, list[float]] = {"httpx": [], "protocol": []}
        try:
            for _ in range(args.rounds):
                for kind in costs:
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            f"--read={kind}",
                            f"--port={port}",
                            f"--streams={args.streams}",
                            f"--seconds={args.seconds}",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                    keepalives = args.streams * args.seconds / args.every
                    costs[kind].append(float(out) / keepalives)
        finally:
            server.terminate()
    for kind, each in costs.items():
        per = sorted(each)[len(each) // 2]
        at_10k = per * KEEPALIVES_PER_S_AT_10K
        verdict = "MEETS" if at_10k <= TARGET_IDLE_CPU else "MISSES"
        print(
            f"   {kind:<8}: {per * 1e6:6.0f} µs per keep-alive; at 10,000 accounts (333/s): "
            f"{at_10k:.2%} CPU for reading alone; target ≤ {TARGET_IDLE_CPU:.0%}: {verdict}",
            flush=True,
        )
    print(f"   {load()} at end")


if __name__ == "__main__":
    main()
