"""Parsing a stream of whole JSON documents that change a little each time.

A WWN stream sends the whole home again on every change (~1.5 kB per device), so parsing
each put from scratch costs more than everything else the daemon does with it. A
`DeltaParser` keeps the last text, its parsed value and where each value at `leaf_depth`
sits in that text. The next text is compared with the last one (C-speed slice
comparisons); where they differ only inside leaves, only those leaves are parsed and put
into a copy of the last value (the containers along their paths are copied, everything
else is shared, so an unchanged device's dict is the very same object). Anything else
(a key added or removed, a changed container above the leaves, a duplicate key,
malformed text) is parsed whole by `parse_json`, with its caps and errors.

The result always equals `parse_json(text)`; it shares parts with earlier results, so it
must not be changed. `edits` says what a parse by changed leaves changed, and `replaced` the
containers it copied along their paths, as they were in the last value (everything else in
them is the very same object in both), for a reader that would otherwise compare the values
again (the WWN normalizer's changed fields and devices).
"""

from __future__ import annotations

import json
import json.decoder
import re
from array import array
from bisect import bisect_right
from collections.abc import Callable
from typing import Any, Final

from roost.providers.bounds import (
    MAX_DEPTH,
    check_bytes,
    check_containers,
    check_depth,
    containers,
    containers_in,
    parse_json,
)

# json's own scanner pieces (C on CPython), which its stubs do not declare.
_WHITESPACE: Final[Callable[[str, int], re.Match[str]]] = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]
_scan_once: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_scanstring: Final[Callable[[str, int, bool], tuple[str, int]]] = json.decoder.scanstring  # type: ignore[attr-defined]

Path = tuple[str, ...]
# By the path of a changed leaf: (its last value, the keys of its members whose text
# changed, or None if the leaf was read whole). A member not named kept its very value.
Edits = dict[Path, tuple[Any, set[str] | None]]


class _Unindexed(Exception):
    """The text cannot be indexed (or patched): parse it whole."""


class DeltaParser:
    def __init__(self, leaf_depth: int = 4) -> None:
        self._leaf_depth = leaf_depth
        self._text: str | None = None
        self._value: Any = None
        self._containers = 0  # of the last text (see bounds.containers)
        # Leaf k spans [starts[k], ends[k]) of the last text. Arrays, not lists of ints: a
        # daemon with 10,000 accounts holds one parser per stream.
        self._starts = array("q")
        self._ends = array("q")
        self._paths: list[Path] = []
        self._inner: dict[int, _Members | None] = {}  # by leaf, built when first needed
        self.patched = 0  # texts parsed by their changed leaves only
        self.whole = 0  # texts parsed whole
        self.edits: Edits | None = None  # of the last parse; None if it was parsed whole
        # Of the last parse, with `edits`: by path, each container copied, as it was.
        self.replaced: dict[Path, Any] = {}

    def parse(self, text: str) -> Any:
        """`parse_json(text)`, parsing only the leaves that changed since the last text."""
        check_bytes(text)
        self.edits, self.replaced = None, {}
        if self._text is not None:
            try:
                value = self._patch(text)
            except _Unindexed:
                pass
            else:
                self.patched += 1
                return value
        self.whole += 1
        self._text = None  # a failure below leaves no index behind
        opened = containers(text)
        check_containers(opened)
        spans: list[tuple[int, int, Path]] = []
        try:
            # json's own scanner reads the leaves: the same value json.loads makes
            value = self._walk(text, spans)
        except (_Unindexed, ValueError, StopIteration, RecursionError, IndexError):
            # not JSON (parse_json says why), too deep, or a shape the index cannot
            # follow (a duplicate key): parsed whole, not indexed
            return parse_json(text)
        check_depth(value)
        self._remember(text, value, spans, opened)
        return value

    def forget_edits(self) -> None:
        """Drop the last parse's `edits` and `replaced` once read. A stream waits minutes
        for its next put: held that long, they would keep the last document's replaced
        containers alive and, in a daemon with 10,000 streams, be walked by every young
        collection."""
        self.edits, self.replaced = None, {}

    def _remember(
        self, text: str, value: Any, spans: list[tuple[int, int, Path]], opened: int
    ) -> None:
        self._text, self._value, self._containers = text, value, opened
        self._starts = array("q", [s[0] for s in spans])
        self._ends = array("q", [s[1] for s in spans])
        self._paths = [s[2] for s in spans]
        self._inner = {}

    # ---- a whole text, with the span of each leaf ----------------------------------------

    def _walk(self, text: str, spans: list[tuple[int, int, Path]]) -> Any:
        idx = _WHITESPACE(text, 0).end()
        value, idx = self._node(text, idx, (), spans)
        if _WHITESPACE(text, idx).end() != len(text):
            raise _Unindexed
        return value

    def _node(
        self, text: str, idx: int, path: Path, spans: list[tuple[int, int, Path]]
    ) -> tuple[Any, int]:
        if len(path) < self._leaf_depth and text.startswith("{", idx):
            return self._object(text, idx, path, spans)
        value, end = _scan_once(text, idx)
        spans.append((idx, end, path))
        return value, end

    def _object(
        self, text: str, idx: int, path: Path, spans: list[tuple[int, int, Path]]
    ) -> tuple[dict[str, Any], int]:
        found: dict[str, Any] = {}
        idx = _WHITESPACE(text, idx + 1).end()
        if text.startswith("}", idx):
            return found, idx + 1
        while True:
            if not text.startswith('"', idx):
                raise _Unindexed
            key, idx = _scanstring(text, idx + 1, True)
            if key in found:  # json keeps the last one; an index would keep both
                raise _Unindexed
            idx = _WHITESPACE(text, idx).end()
            if not text.startswith(":", idx):
                raise _Unindexed
            idx = _WHITESPACE(text, idx + 1).end()
            found[key], idx = self._node(text, idx, (*path, key), spans)
            idx = _WHITESPACE(text, idx).end()
            if text.startswith("}", idx):
                return found, idx + 1
            if not text.startswith(",", idx):
                raise _Unindexed
            idx = _WHITESPACE(text, idx + 1).end()

    # ---- a text that differs from the last one inside leaves only --------------------------

    def _patch(self, text: str) -> Any:
        old = self._text
        assert old is not None
        if text == old:
            self.edits = {}
            return self._value
        starts, ends = self._starts, self._ends
        changes: list[_Change] = []
        old_at, new_at = 0, 0
        opened = self._containers  # counted again only where the texts differ
        while True:
            same = _common_prefix(old, old_at, text, new_at, known_to_differ=not changes)
            old_at, new_at = old_at + same, new_at + same
            if old_at == len(old) and new_at == len(text):
                break
            # The first difference must lie in a leaf at or after the last one changed (or
            # at its very end: a number that grew a digit); in a member of an object leaf
            # after the last member replaced, or in a leaf not changed yet.
            leaf = bisect_right(starts, old_at) - 1
            last = changes[-1] if changes else None
            if leaf < 0 or old_at > ends[leaf] or (last is not None and leaf < last.leaf):
                raise _Unindexed
            inner, member = self._member(leaf, old, old_at)
            after_last = last is None or last.leaf < leaf
            next_member = last is not None and 0 <= last.member < member
            if inner is not None and (after_last or next_member):
                old_start = starts[leaf] + inner.starts[member]
                old_end = starts[leaf] + inner.ends[member]
                path = (*self._paths[leaf], inner.keys[member])
            elif after_last:
                member, old_start, old_end, path = -1, starts[leaf], ends[leaf], self._paths[leaf]
            else:
                raise _Unindexed
            start = new_at - (old_at - old_start)
            try:
                value, end = _scan_once(text, start)
            except (StopIteration, ValueError, RecursionError):
                raise _Unindexed from None
            inside = containers_in(text, start, end)
            if inside > MAX_DEPTH - len(path):  # else it cannot nest that deep
                check_depth(value, MAX_DEPTH - len(path))
            opened += inside - containers_in(old, old_start, old_end)
            changes.append(_Change(leaf, member, path, value, start, end))
            old_at, new_at = old_end, end
        check_containers(opened)
        edits = self._edits(changes)
        value = self._rebuilt(changes)
        self._reindex(changes)
        self.edits = edits
        self._text, self._value, self._containers = text, value, opened
        return value

    def _edits(self, changes: list[_Change]) -> Edits:
        edits: Edits = {}
        for change in changes:
            path = self._paths[change.leaf]
            edit = edits.get(path)
            if edit is None:
                members: set[str] | None = set() if change.member >= 0 else None
                edit = edits[path] = (self._leaf(change.leaf), members)
            if edit[1] is not None:
                edit[1].add(change.path[-1])
        return edits

    def _member(self, leaf: int, old: str, old_at: int) -> tuple[_Members | None, int]:
        """The members of object leaf `leaf` and the one whose value spans `old_at` (its
        end included), if any. A leaf's members are indexed when a change first falls in it."""
        if leaf in self._inner:
            inner = self._inner[leaf]
        else:
            inner = self._inner[leaf] = _members(old, self._starts[leaf], self._leaf(leaf))
        if inner is None:
            return None, -1
        rel = old_at - self._starts[leaf]
        member = bisect_right(inner.starts, rel) - 1
        return (inner, member) if member >= 0 and rel <= inner.ends[member] else (None, -1)

    def _leaf(self, leaf: int) -> Any:
        """The last value of leaf `leaf`."""
        node = self._value
        for key in self._paths[leaf]:
            node = node[key]
        return node

    def _rebuilt(self, changes: list[_Change]) -> Any:
        """The last value with the changed values: containers along their paths copied."""
        copies: dict[Path, dict[str, Any]] = {}
        replaced = self.replaced
        root: Any = self._value
        for change in changes:
            path = change.path
            if not path:
                return change.value  # the whole document is one leaf
            if () not in copies:
                replaced[()] = root
                copies[()] = root = dict(root)
            node: dict[str, Any] = root
            for depth in range(1, len(path)):
                at = path[:depth]
                copied = copies.get(at)
                if copied is None:
                    replaced[at] = node[path[depth - 1]]
                    copied = copies[at] = dict(replaced[at])
                    node[path[depth - 1]] = copied
                node = copied
            node[path[-1]] = change.value
        return root

    def _reindex(self, changes: list[_Change]) -> None:
        starts, ends = self._starts, self._ends
        shift, upto, at = 0, 0, 0
        while at < len(changes):
            leaf = changes[at].leaf
            group = [changes[at]]
            at += 1
            while at < len(changes) and changes[at].leaf == leaf:
                group.append(changes[at])
                at += 1
            if group[0].member < 0:  # the whole leaf: its members are indexed anew if needed
                new_start, new_end = group[0].start, group[0].end
                self._inner.pop(leaf, None)
            else:
                new_start = starts[leaf] + shift
                inner = self._inner[leaf]
                assert inner is not None  # a member was replaced
                new_end = ends[leaf] + shift + inner.replace(group, new_start)
            if shift:
                _shift(starts, ends, upto, leaf, shift)
            shift = new_end - ends[leaf]
            starts[leaf], ends[leaf], upto = new_start, new_end, leaf + 1
        if shift:
            _shift(starts, ends, upto, len(starts), shift)


class _Change:
    """One value of the new text: a whole leaf (`member` -1) or a member of an object leaf,
    its path, its value and its span in the new text."""

    __slots__ = ("end", "leaf", "member", "path", "start", "value")

    def __init__(self, leaf: int, member: int, path: Path, value: Any, start: int, end: int):
        self.leaf, self.member, self.path = leaf, member, path
        self.value, self.start, self.end = value, start, end


class _Members:
    """The members of an object leaf: each one's key and the span of its value, relative
    to the leaf's start. A device's dict is a leaf (its 40-odd fields are not): a change of
    one field parses that field's value, not the whole dict."""

    __slots__ = ("ends", "keys", "starts")

    def __init__(self) -> None:
        # ints of 4 bytes: offsets within one leaf of a document of at most 4 MiB
        self.starts = array("i")
        self.ends = array("i")
        self.keys: list[str] = []

    def replace(self, changes: list[_Change], leaf_start: int) -> int:
        """Take the new spans of the changed members (in order) of a leaf now starting at
        `leaf_start`; returns how much longer the leaf became."""
        shift, upto = 0, 0
        for change in changes:
            member = change.member
            if shift:
                _shift(self.starts, self.ends, upto, member, shift)
            shift = (change.end - leaf_start) - self.ends[member]
            self.starts[member] = change.start - leaf_start
            self.ends[member] = change.end - leaf_start
            upto = member + 1
        if shift:
            _shift(self.starts, self.ends, upto, len(self.starts), shift)
        return shift


def _members(text: str, start: int, value: Any) -> _Members | None:
    """The members of the object at `start` of `text` (a text already parsed whole, whose
    value there is `value`), or None if that is not an object or its members cannot be
    told apart (a duplicate key). The keys kept are `value`'s own (no copies: a daemon
    with 10,000 accounts holds one index per device that changed)."""
    if not text.startswith("{", start) or type(value) is not dict:
        return None
    members, keys = _Members(), list(value)
    idx = _WHITESPACE(text, start + 1).end()
    if text.startswith("}", idx):
        return members if not keys else None
    try:
        while True:
            key, idx = _scanstring(text, idx + 1, True)
            at = len(members.keys)
            if at >= len(keys) or key != keys[at]:
                return None  # a duplicate key: the dict holds fewer, or another order
            idx = _WHITESPACE(text, idx).end()
            idx = _WHITESPACE(text, idx + 1).end()  # past the colon
            _, end = _scan_once(text, idx)
            members.starts.append(idx - start)
            members.ends.append(end - start)
            members.keys.append(keys[at])
            idx = _WHITESPACE(text, end).end()
            if text.startswith("}", idx):
                return members if len(members.keys) == len(keys) else None
            idx = _WHITESPACE(text, idx + 1).end()  # past the comma
    except (ValueError, StopIteration, RecursionError, IndexError, OverflowError):
        return None


def _shift(starts: array[int], ends: array[int], lo: int, hi: int, by: int) -> None:
    starts[lo:hi] = array(starts.typecode, [s + by for s in starts[lo:hi]])
    ends[lo:hi] = array(ends.typecode, [e + by for e in ends[lo:hi]])


def _common_prefix(a: str, a_at: int, b: str, b_at: int, *, known_to_differ: bool) -> int:
    """How many characters `a[a_at:]` and `b[b_at:]` have in common at their start.

    A binary search whose probes halve: about twice the shorter tail copied in all."""
    lo, hi = 0, min(len(a) - a_at, len(b) - b_at)
    # `startswith` at an offset: one slice copied per probe, not two
    if not known_to_differ and b.startswith(a[a_at : a_at + hi], b_at):
        return hi
    # invariant: the first `lo` characters agree, and the answer is at most `hi`
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if b.startswith(a[a_at + lo : a_at + mid], b_at + lo):
            lo = mid
        else:
            hi = mid - 1
    return lo
