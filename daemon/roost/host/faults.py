"""Named points where the fault suite can kill the daemon with SIGKILL.

`ROOST_FAULT_KILL_AT=outbox_committed` (optionally `name:N` for the N-th time the point is
reached) makes the process kill itself there, exactly as `kill -9` would, so tests can
prove that a crash at that point loses nothing. Unset, a fault point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "ROOST_FAULT_KILL_AT"  # not a setting: `roost run` knows to let it through
_counts: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV)
    if not spec:
        return None
    name, _, nth = spec.partition(":")
    return name, int(nth) if nth.isdigit() else 1


_TARGET = _target()


def fault_point(name: str) -> None:
    if _TARGET is None or _TARGET[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= _TARGET[1]:
        os.kill(os.getpid(), signal.SIGKILL)
