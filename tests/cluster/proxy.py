"""A TCP proxy on 127.0.0.1 in front of a server, to partition one client from it.

`partition()` is a network partition as each side meets it: the server sees its client's
connections end (as its TCP keep-alives would tell it), while the client's connections stay
open and silent, and new ones are accepted and never answered: the client learns of the
partition only by its own timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import SocketStream, TaskGroup


class Proxy:
    def __init__(self, target_port: int, tg: TaskGroup) -> None:
        self._target_port = target_port
        self._tg = tg
        self._upstreams: set[SocketStream] = set()
        self._downstreams: set[SocketStream] = set()
        self.cut = anyio.Event()
        self.port = 0

    def partition(self) -> None:
        self.cut.set()
        for upstream in list(self._upstreams):  # the server's side ends
            self._tg.start_soon(upstream.aclose)

    async def close(self) -> None:
        """End every connection on both sides (the test is over)."""
        self.cut.set()
        for stream in [*self._upstreams, *self._downstreams]:
            await stream.aclose()

    async def handle(self, client: SocketStream) -> None:
        self._downstreams.add(client)
        try:
            if self.cut.is_set():
                await anyio.sleep_forever()  # accepted, never answered
            async with await anyio.connect_tcp("127.0.0.1", self._target_port) as server:
                self._upstreams.add(server)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pipe, client, server, tg)
                    tg.start_soon(self._pipe, server, client, tg)
            if self.cut.is_set():
                await anyio.sleep_forever()  # the client's side stays open, silent
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            self._downstreams.discard(client)

    async def _pipe(self, source: SocketStream, sink: SocketStream, tg: TaskGroup) -> None:
        try:
            async for chunk in source:
                if self.cut.is_set():
                    return  # (what the client still sends goes nowhere)
                await sink.send(chunk)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        if not self.cut.is_set():
            tg.cancel_scope.cancel()  # one side closed: so does the other


@asynccontextmanager
async def tcp_proxy(target_port: int) -> AsyncIterator[Proxy]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    async with listener, anyio.create_task_group() as tg:
        proxy = Proxy(target_port, tg)
        proxy.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
        tg.start_soon(listener.serve, proxy.handle)
        try:
            yield proxy
        finally:
            await proxy.close()
            tg.cancel_scope.cancel()  # (before the listener closes under its accept)
