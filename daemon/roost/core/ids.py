"""Cheap, unique, sortable identifiers for events and commands.

uuid4 costs microseconds on the hot path; a per-process random prefix plus a counter is
unique across restarts and sorts in creation order within a process.
"""

from __future__ import annotations

import itertools
import secrets

_BOOT = secrets.token_hex(3)
_COUNTER = itertools.count(1)


def new_id(prefix: str = "e") -> str:
    return f"{prefix}{_BOOT}.{next(_COUNTER)}"
