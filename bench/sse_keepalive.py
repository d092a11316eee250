"""What-if: CPU per SSE keep-alive, httpx + httpx-sse (the WWN provider's reader) against a
plain asyncio Protocol.

    .venv/bin/python bench/sse_keepalive.py [--streams 1000] [--every 1.0] [--seconds 10]

A server process (this script with `--serve`) holds `--streams` SSE streams, each sending
WWN's keep-alive (`event: keep-alive` / `data: null`) every `--every` s. This process reads
them all, first through one shared `httpx.AsyncClient` with `httpx_sse.aconnect_sse` (as
the provider does, without its own per-event work), then through an `asyncio.Protocol`
that splits the bytes at blank lines; each reader alone, in a fresh process. Figure: this
process's CPU time per keep-alive read, and what that makes at 10,000 accounts with WWN's
30 s keep-alives (333 a second), against the 2 % idle target.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time

import httpx
import httpx_sse

from common import header

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
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        try:
            while True:
                await asyncio.sleep(every)
                writer.write(KEEPALIVE)
                await writer.drain()
        except ConnectionError:
            pass

    server = await asyncio.start_server(stream, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


class Counter:
    keepalives = 0


async def read_httpx(client: httpx.AsyncClient, url: str) -> None:
    timeout = httpx.Timeout(5.0, read=60.0)
    async with httpx_sse.aconnect_sse(client, "GET", url, timeout=timeout) as source:
        async for _ in source.aiter_sse():
            Counter.keepalives += 1


class KeepAliveProtocol(asyncio.Protocol):
    """An SSE body read as bytes: headers skipped, events split at blank lines."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buffer = b""
        self.in_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.in_body:
            _, found, rest = self.buffer.partition(b"\r\n\r\n")
            if not found:
                return
            self.in_body, self.buffer = True, rest
        *events, self.buffer = self.buffer.split(b"\n\n")
        Counter.keepalives += len(events)


async def measure(seconds: float) -> tuple[int, float]:
    await asyncio.sleep(3.0)  # every stream connected and reading
    Counter.keepalives, started = 0, time.process_time()
    await asyncio.sleep(seconds)
    return Counter.keepalives, time.process_time() - started


async def read(kind: str, port: int, streams: int, seconds: float) -> tuple[int, float]:
    url = f"http://127.0.0.1:{port}/"
    if kind == "httpx":
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(limits=limits) as client:
            readers = [asyncio.create_task(read_httpx(client, url)) for _ in range(streams)]
            result = await measure(seconds)
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            return result
    loop = asyncio.get_running_loop()
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    transports = []
    for _ in range(streams):
        transport, _ = await loop.create_connection(
            lambda: KeepAliveProtocol(request), "127.0.0.1", port
        )
        transports.append(transport)
    result = await measure(seconds)
    for transport in transports:
        transport.close()
    return result


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
        count, cpu = asyncio.run(read(args.read, args.port, args.streams, args.seconds))
        print(count, cpu, flush=True)
        return
    header(
        "sse_keepalive: CPU per keep-alive read, httpx + httpx-sse vs an asyncio Protocol",
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
                    ).stdout.split()
                    count, cpu = int(out[0]), float(out[1])
                    costs[kind].append(cpu / count)
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


if __name__ == "__main__":
    main()
