"""What has already been reported, so that a redelivered message or a thread's later
message with the same events does not fire rules twice.

Pub/Sub delivers at least once, and an event thread repeats its events in its UPDATED and
ENDED messages. The provider remembers the `eventId` of every message it handled and the
`session/kind` of every device event it reported: a bounded, ordered set, written to the
daemon's `ProviderMemory` before the messages are acknowledged, so a restart between the
two does not report them again either.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable

from roost.providers.base import ProviderMemory

MEMORY_KEY = "sdm.seen"


class Seen:
    def __init__(self, memory: ProviderMemory, account: str, capacity: int = 2048) -> None:
        self._memory = memory
        self._account = account
        self._capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._dirty = False

    async def load(self) -> None:
        raw = await self._memory.get(self._account, MEMORY_KEY)
        try:
            ids = json.loads(raw) if raw else []
        except json.JSONDecodeError:
            ids = []
        self._ids = OrderedDict.fromkeys(str(i) for i in ids if isinstance(i, str))
        self._trim()

    def __contains__(self, key: str) -> bool:
        return key in self._ids

    def add(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._ids[key] = None
            self._ids.move_to_end(key)
            self._dirty = True
        self._trim()

    async def save(self) -> None:
        """Make what was added durable (a no-op if nothing was)."""
        if self._dirty:
            await self._memory.put(self._account, MEMORY_KEY, json.dumps(list(self._ids)))
            self._dirty = False

    def _trim(self) -> None:
        while len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
