"""Cheap, unique identifiers for events, commands and traces.

uuid4 costs microseconds on the hot path; a per-process random prefix plus a counter is
unique across restarts. Nothing orders by id (the journal has its own sequence).
"""

from __future__ import annotations

import itertools
import secrets

_BOOT = secrets.token_hex(3)
_COUNTER = itertools.count(1)

# The sequence's next number, a C call: for an id spelled only if it is read (`spelled`),
# as a trace's is (most traces are never read; spelling one was ~2.4k instructions a run).
next_number = _COUNTER.__next__


def new_id(prefix: str = "e") -> str:
    return f"{prefix}{_BOOT}.{next(_COUNTER)}"


def spelled(prefix: str, number: int) -> str:
    """The id `new_id(prefix)` makes when the sequence is at `number`."""
    return f"{prefix}{_BOOT}.{number}"
