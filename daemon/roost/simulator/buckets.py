"""A versioned bucket store: the data model of the old Nest web service.

The service keeps a home as "buckets", each a key (`<type>.<id>`: `structure.<id>`,
`device.<serial>`, `shared.<serial>`, …), a version, a timestamp (ms since the epoch) and a
JSON object. A bucket gets a new version whenever its value changes; clients hold the
versions they have seen and ask for whatever differs. Versions are opaque: the 2012 capture
(PROTOCOLS.md §2, seed 002) shows signed 32-bit numbers in no order, so this store draws them
at random and a client may only compare them for equality.

The store knows nothing about homes or wire formats; the Nest web front renders a `SimHome`
into it and serves it in both the `v1` and the `v5` form.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

_VERSION_BITS = 31


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    version: int
    timestamp_ms: int
    value: Mapping[str, Any]

    @property
    def type(self) -> str:
        return self.key.partition(".")[0]

    @property
    def id(self) -> str:
        return self.key.partition(".")[2]


class BucketStore:
    """Buckets by key. Every change wakes `wait_changed`; values are deep-copied in and out."""

    def __init__(self, clock: Callable[[], datetime], *, seed: int | None = None) -> None:
        self._clock = clock
        self._random = random.Random(seed)
        self._buckets: dict[str, Bucket] = {}
        self.changes = 0  # bumped by every change, for `wait_changed`
        self._changed: anyio.Event | None = None

    def __contains__(self, key: str) -> bool:
        return key in self._buckets

    def get(self, key: str) -> Bucket | None:
        return self._buckets.get(key)

    def keys(self) -> list[str]:
        return sorted(self._buckets)

    def buckets(self, types: Iterable[str] | None = None) -> list[Bucket]:
        """Every bucket (of these types, if given), in key order."""
        wanted = None if types is None else frozenset(types)
        return [
            bucket
            for key, bucket in sorted(self._buckets.items())
            if wanted is None or bucket.type in wanted
        ]

    def put(self, key: str, value: Mapping[str, Any]) -> Bucket:
        """Store `value` as the whole bucket; a new version only if the value differs."""
        held = self._buckets.get(key)
        if held is not None and held.value == value:
            return held
        bucket = Bucket(key, self._new_version(held), self._now_ms(), copy.deepcopy(dict(value)))
        self._buckets[key] = bucket
        self._bump()
        return bucket

    def merge(self, key: str, fields: Mapping[str, Any]) -> Bucket:
        """Set some top-level fields of a bucket (a `MERGE`), creating it if needed."""
        held = self._buckets.get(key)
        return self.put(key, {**(held.value if held else {}), **copy.deepcopy(dict(fields))})

    def remove(self, key: str) -> None:
        if self._buckets.pop(key, None) is not None:
            self._bump()

    def differing(self, held: Mapping[str, int]) -> list[Bucket]:
        """The buckets among `held`'s keys whose version is not the one held (unknown keys
        are skipped: a client learns of new buckets through `structure.swarm`)."""
        return [
            bucket
            for key, version in held.items()
            if (bucket := self._buckets.get(key)) is not None and bucket.version != version
        ]

    async def wait_changed(self, after: int) -> int:
        """Wait until `changes` is past `after`, and return it."""
        while self.changes <= after:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()
        return self.changes

    def _new_version(self, held: Bucket | None) -> int:
        while True:
            version = self._random.randrange(-(2**_VERSION_BITS), 2**_VERSION_BITS)
            if held is None or version != held.version:
                return version

    def _now_ms(self) -> int:
        return int(self._clock().timestamp() * 1000)

    def _bump(self) -> None:
        self.changes += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
