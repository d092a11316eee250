"""The buckets one account holds, with the revision of each: what a subscribe asks about.

`app_launch` answers every bucket (`updated_buckets`), a subscribe the ones that changed
(`objects`); both are lists of `{object_key, object_revision, object_timestamp, value}`.
Revisions are opaque (the 2012 capture shows signed numbers in no order), so a bucket is
news whenever its revision differs from the one held. A reply's `value` is merged key by
key into the held value, as homebridge-nest does: a reply that carries only some fields
never erases the others. A `null` value removes the bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from roost.core.errors import PayloadError


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str
    revision: int
    timestamp_ms: int
    value: Mapping[str, Any] | None  # None: the bucket was removed

    @property
    def type(self) -> str:
        return self.key.partition(".")[0]

    @property
    def id(self) -> str:
        return self.key.partition(".")[2]


def parse_objects(
    raw: Any, field: str, skip: Callable[[PayloadError], None] | None = None
) -> list[Bucket]:
    """The bucket objects of a reply's `field` (`objects` or `updated_buckets`). With
    `skip`, a bucket object that cannot be read is handed to it and left out, so that it
    costs no other bucket of the reply; without, it refuses the whole reply."""
    if not isinstance(raw, Mapping):
        raise PayloadError("the reply is not a JSON object")
    items = raw.get(field)
    if items is None:
        return []
    if not isinstance(items, list):
        raise PayloadError(f"{field} is not a list")
    buckets = []
    for item in items:
        try:
            buckets.append(_bucket(item))
        except PayloadError as exc:
            if skip is None:
                raise
            skip(exc)
    return buckets


def _bucket(item: Any) -> Bucket:
    if not isinstance(item, Mapping):
        raise PayloadError("a bucket object is not a JSON object")
    key = item.get("object_key")
    if not isinstance(key, str) or "." not in key:
        raise PayloadError(f"bad object_key {key!r}")
    value = item.get("value")
    if value is not None and not isinstance(value, Mapping):
        raise PayloadError(f"{key}: value is not a JSON object")
    revision = _integer(item, "object_revision", key)
    return Bucket(key, revision, _integer(item, "object_timestamp", key, default=0), value)


def _integer(item: Mapping[str, Any], name: str, key: str, default: int | None = None) -> int:
    number = item.get(name, default)
    if isinstance(number, bool) or not isinstance(number, int):
        raise PayloadError(f"{key}: {name} is not an integer: {number!r}")
    return number


class BucketSet:
    """Every bucket the account has seen, by key."""

    def __init__(self) -> None:
        self._buckets: dict[str, Bucket] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def values(self) -> dict[str, Mapping[str, Any]]:
        """Key → value of every held bucket (what the normalizer reads)."""
        return {key: b.value for key, b in self._buckets.items() if b.value is not None}

    def replace_all(self, buckets: list[Bucket]) -> None:
        """A full refresh: hold exactly these buckets."""
        self._buckets = {b.key: b for b in buckets if b.value is not None}

    def apply(self, buckets: list[Bucket]) -> list[str]:
        """Merge a subscribe reply; the keys whose revision was news."""
        changed: list[str] = []
        for bucket in buckets:
            held = self._buckets.get(bucket.key)
            if held is not None and held.revision == bucket.revision:
                continue
            changed.append(bucket.key)
            if bucket.value is None:
                self._buckets.pop(bucket.key, None)
                continue
            value = {**(held.value or {}), **bucket.value} if held is not None else bucket.value
            self._buckets[bucket.key] = Bucket(
                bucket.key, bucket.revision, bucket.timestamp_ms, value
            )
        return changed

    def subscription(self) -> list[dict[str, Any]]:
        """The subscribe body's objects: every held key with its revision and timestamp."""
        return [
            {"object_key": b.key, "object_revision": b.revision, "object_timestamp": b.timestamp_ms}
            for b in self._buckets.values()
        ]

    def missing(self) -> frozenset[str]:
        """Buckets the held ones refer to but that are not held: devices in a structure's
        `swarm` and structures in the user's `structures`. New ones mean a full refresh."""
        referenced: set[str] = set()
        for bucket in self._buckets.values():
            value = bucket.value or {}
            refs = value.get("swarm") if bucket.type == "structure" else None
            if bucket.type == "user":
                refs = value.get("structures")
            if isinstance(refs, list):
                referenced.update(ref for ref in refs if isinstance(ref, str))
        return frozenset(referenced - self._buckets.keys())
