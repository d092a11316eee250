"""A bus subscriber's inbox: what was published to it, in order, at most `size` waiting.

The bus puts into it (`put`; when it is full and the subscriber's overflow is to wait,
`put_waiting`, which holds the publisher until there is room); the subscriber takes from it
(`receive`, `async for`, or everything waiting at once with `take_all`). It keeps the
semantics of the anyio memory object stream it replaces: held puts go in in the order they
came, each as soon as a take makes room; a reader cancelled while it waits takes nothing;
once the bus ends it (`end`) the reader gets what is left and then `anyio.EndOfStream`;
once the reader closes it, puts raise `anyio.BrokenResourceError` (the bus then drops the
subscriber) and takes raise `anyio.ClosedResourceError`.

Its own type, not a memory object stream: a put is a length check and an append, a take a
pop (a stream's put looked for waiting receivers and asked each for its cancellation, and a
waiting receive built a record of its task).
"""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Generic, TypeVar

import anyio
from anyio.lowlevel import checkpoint

T = TypeVar("T")


class _Held(Generic[T]):
    """A put waiting for room: `taken` once its item is in the inbox."""

    __slots__ = ("done", "item", "taken")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = anyio.Event()
        self.taken = False


class Inbox(Generic[T]):
    __slots__ = ("_arrived", "_closed", "_ended", "_held", "_items", "_open", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("an inbox holds at least one item")
        self.size = size
        self._items: deque[T] = deque()
        self._held: deque[_Held[T]] = deque()  # puts waiting for room, oldest first
        self._arrived: anyio.Event | None = None  # set at the next put (readers wait on it)
        self._closed = False  # by its reader
        self._ended = False  # by the bus
        self._open = True  # neither (read by every put and take)

    def __len__(self) -> int:
        """Items waiting to be taken (held puts not counted)."""
        return len(self._items)

    # ---- the bus's side --------------------------------------------------------------

    def put(self, item: T) -> bool:
        """Add `item` if there is room; False if the inbox is full (held puts mean full)."""
        if not self._open:
            raise anyio.BrokenResourceError if self._closed else anyio.ClosedResourceError
        items = self._items
        if len(items) >= self.size:
            return False
        items.append(item)
        if self._arrived is not None:
            self._wake_readers()
        return True

    async def put_waiting(self, item: T) -> None:
        """Add `item`, waiting for room after the puts already waiting."""
        if self.put(item):
            await checkpoint()
            return
        held = _Held(item)
        self._held.append(held)
        try:
            await held.done.wait()
        finally:
            if not held.taken and held in self._held:  # cancelled while it waited
                self._held.remove(held)
        if not held.taken:  # the inbox was closed or ended first
            raise anyio.BrokenResourceError if self._closed else anyio.ClosedResourceError

    def end(self) -> None:
        """No more puts: the reader takes what is left, then gets EndOfStream."""
        if self._ended:
            return
        self._ended, self._open = True, False
        self._release_held()
        self._wake_readers()

    # ---- the reader's side -----------------------------------------------------------

    def receive_nowait(self) -> T:
        """The next item; anyio.WouldBlock if none waits."""
        if self._closed:
            raise anyio.ClosedResourceError
        items = self._items
        if items:
            item = items.popleft()
            if self._held:  # room for the oldest held put
                held = self._held.popleft()
                items.append(held.item)
                _taken(held)
            return item
        if self._ended:
            raise anyio.EndOfStream
        raise anyio.WouldBlock

    async def receive(self) -> T:
        """The next item, waiting for one (a checkpoint either way, as a stream's is)."""
        if self._items or not self._open:
            await checkpoint()
        while not self._items and self._open:
            arrived = self._arrived
            if arrived is None:
                arrived = self._arrived = anyio.Event()
            await arrived.wait()
        return self.receive_nowait()

    def take_all(self) -> deque[T] | tuple[()]:
        """Every item waiting now, held puts' included (those puts return), without
        yielding. A reader that takes one item per turn of the event loop falls behind a
        flood published between two turns, until its full inbox holds every publisher."""
        if self._closed:
            raise anyio.ClosedResourceError
        items = self._items
        if not items:
            return ()
        self._items = deque()
        held = self._held
        while held:
            put = held.popleft()
            items.append(put.item)
            _taken(put)
        return items

    def close(self) -> None:
        """The reader is done: puts fail from now on (the bus drops the subscriber)."""
        if self._closed:
            return
        self._closed, self._open = True, False
        self._release_held()
        self._wake_readers()

    async def aclose(self) -> None:
        self.close()

    def __aiter__(self) -> Inbox[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def __enter__(self) -> Inbox[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Inbox[T]:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ---- both ------------------------------------------------------------------------

    def _release_held(self) -> None:
        """The held puts end without their items taken: they raise."""
        for held in self._held:
            held.done.set()
        self._held.clear()

    def _wake_readers(self) -> None:
        arrived, self._arrived = self._arrived, None
        if arrived is not None:
            arrived.set()


def _taken(held: _Held[T]) -> None:
    held.taken = True
    held.done.set()
