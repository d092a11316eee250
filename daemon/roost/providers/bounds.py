"""Caps on what a vendor payload may cost to parse: size, nesting depth, path length, devices.

A payload over a cap raises `PayloadTooLarge` with a clear message; the provider counts it,
logs it, skips that payload and keeps running. Nothing here recurses, so JSON nested 10⁵
levels deep or a put path of 5,000 segments is refused, never a `RecursionError`.
The device cap keeps the largest document the caps allow under the unit's MemoryMax=256M
(tests/test_parse_bounds.py measures the peak RSS of a real subprocess).
"""

from __future__ import annotations

import json
from itertools import compress
from typing import Any, Final

MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
MAX_DEPTH: Final = 32  # vendor documents nest 6–8 levels
MAX_PATH_SEGMENTS: Final = 16  # a WWN put path is at most /devices/<kind>/<id>/<field>
MAX_DEVICES: Final = 2000  # per account
# Objects and arrays per document: a real one has a few per device. Each costs ~60 bytes
# parsed from 2-3 bytes of text, so without this cap 4 MB of `{},` would cost 100 MB+.
MAX_CONTAINERS: Final = 100_000


class PayloadTooLarge(ValueError):
    """A payload beyond one of the parse caps."""


def parse_json(text: str | bytes, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """`json.loads`, refusing documents over `max_bytes` or nested deeper than MAX_DEPTH.

    Raises `PayloadTooLarge`, or `ValueError` (json.JSONDecodeError) for text that is not JSON.
    Bytes that are not UTF-8 become U+FFFD (as the SSE reader has it): a stray latin-1 byte
    in one name must not make the whole answer unreadable.
    """
    check_size(text, max_bytes)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        value = json.loads(text)
    except RecursionError:
        raise PayloadTooLarge(f"document nested deeper than {MAX_DEPTH} levels") from None
    check_depth(value)
    return value


def check_size(text: str | bytes, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
    """Raise `PayloadTooLarge` for a text over `max_bytes` or with more than MAX_CONTAINERS
    objects and arrays (counted before parsing: an upper bound, brackets in strings count)."""
    check_bytes(text, max_bytes)
    check_containers(containers(text))


def check_bytes(text: str | bytes, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
    if len(text) > max_bytes:
        raise PayloadTooLarge(f"document of {len(text)} bytes exceeds the cap of {max_bytes}")


def containers(text: str | bytes) -> int:
    """The objects and arrays `text` opens, at most (brackets in strings count too)."""
    return _count(text, "{") + _count(text, "[")


def containers_in(text: str, start: int, end: int) -> int:
    """`containers(text[start:end])`, without the slice."""
    return text.count("{", start, end) + text.count("[", start, end)


def check_containers(opened: int) -> None:
    if opened > MAX_CONTAINERS:
        raise PayloadTooLarge(f"document of {opened} objects and arrays exceeds the cap")


def _count(text: str | bytes, char: str) -> int:
    return text.count(char.encode()) if isinstance(text, bytes) else text.count(char)


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise `PayloadTooLarge` if `value` nests deeper than `max_depth` (no recursion).

    Walks one level at a time; each container's children are filtered by type in C
    (`compress` over `map(type)`), so the leaves (most of a document) cost no Python-level
    step: ~3x faster than a per-value `isinstance` on a WWN home document.
    """
    level: list[Any] = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise PayloadTooLarge(f"document nested deeper than {max_depth} levels")
        below: list[Any] = []
        for node in level:
            children = node.values() if type(node) is dict else node
            below.extend(compress(children, map(_is_container, map(type, children))))
        level = below


_CONTAINERS: Final = frozenset((dict, list))  # what json.loads makes (never subclasses)
_is_container = _CONTAINERS.__contains__


def check_path(path: str) -> list[str]:
    """The segments of a put path, refusing one longer than MAX_PATH_SEGMENTS."""
    if path.count("/") > MAX_PATH_SEGMENTS + 1:
        raise PayloadTooLarge(f"put path has more than {MAX_PATH_SEGMENTS} segments")
    keys = [k for k in path.split("/") if k]
    if len(keys) > MAX_PATH_SEGMENTS:
        raise PayloadTooLarge(f"put path has more than {MAX_PATH_SEGMENTS} segments")
    return keys


def check_devices(count: int, max_devices: int = MAX_DEVICES) -> None:
    if count > max_devices:
        raise PayloadTooLarge(f"{count} devices exceed the cap of {max_devices} per account")
