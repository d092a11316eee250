"""Recognising a command's echo in the stream.

When the dispatcher sends a command it registers what the device should show afterwards
(`Action.expected()`). When the state diff sees those values on that target, the changes
are attributed to the command (causation) and the command is confirmed, with its latency.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roost.commands import Command, satisfies


@dataclass
class _Expectation:
    command: Command
    remaining: dict[str, Any]
    sent_at: float = field(default_factory=time.monotonic)
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Confirmation:
    command: Command
    latency_s: float


class EchoTracker:
    def __init__(self, ttl_s: float = 120.0) -> None:
        self._ttl_s = ttl_s
        self._pending: dict[str, list[_Expectation]] = {}

    def expect(self, command: Command) -> None:
        expected = command.action.expected()
        if not expected:
            return
        now = time.monotonic()
        entry = _Expectation(command, dict(expected), now, now + self._ttl_s)
        self._pending.setdefault(command.target, []).append(entry)

    def forget(self, command: Command) -> None:
        entries = self._pending.get(command.target, [])
        self._pending[command.target] = [e for e in entries if e.command.id != command.id]
        if not self._pending[command.target]:
            del self._pending[command.target]

    def is_pending(self, command: Command) -> bool:
        return any(e.command.id == command.id for e in self._pending.get(command.target, []))

    def is_watching(self, target: str) -> bool:
        return target in self._pending

    def match(
        self, target: str, changed: Mapping[str, Any]
    ) -> tuple[Command | None, list[Confirmation]]:
        """Attribute the changes on `target` to a pending command, if they echo one.

        Returns the command the changes are caused by (the oldest matching one) and the
        commands that are now fully confirmed.
        """
        entries = self._pending.get(target)
        if not entries:
            return None, []
        now = time.monotonic()
        cause: Command | None = None
        confirmed: list[Confirmation] = []
        keep: list[_Expectation] = []
        for entry in entries:
            if now > entry.expires_at:
                continue
            hit = [
                k for k, v in entry.remaining.items() if k in changed and satisfies(changed[k], v)
            ]
            for key in hit:
                del entry.remaining[key]
            if hit and cause is None:
                cause = entry.command
            if entry.remaining:
                keep.append(entry)
            else:
                confirmed.append(Confirmation(entry.command, now - entry.sent_at))
        if keep:
            self._pending[target] = keep
        else:
            del self._pending[target]
        return cause, confirmed
