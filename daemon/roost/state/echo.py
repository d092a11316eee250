"""Recognising a command's echo in the stream, and the outcome events of commands.

When the dispatcher sends a command it registers what the device should show afterwards
(`Action.expected()`). When the state diff sees those values on that target, the changes
are attributed to the command (causation) and the command is confirmed, with its latency
since the first send. An expectation that no echo meets within `ttl_s` is reported by
`expired()`, so a write the device never showed still gets an outcome.

`outcome_event` builds every `CommandOutcome`, so each carries the whole causation:
command id, rule, the event the rule ran for, and the correlation of the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from roost.core.clock import Clock, SystemClock
from roost.core.commands import Command, FailureReason, satisfies
from roost.core.events import CommandOutcome, Outcome, make_context, make_outcome
from roost.core.fastinit import fast_init
from roost.core.ids import new_id


@fast_init  # one per command outcome
@dataclass(frozen=True, slots=True)
class Place:
    """Where a command lands: its structure, and its device (None for a structure)."""

    structure: str | None
    device: str | None


def outcome_event(
    command: Command,
    outcome: Outcome,
    at: datetime,
    place: Place,
    *,
    reason: str = "",
    guard: str | None = None,
    failure: FailureReason | None = None,
    latency_s: float | None = None,
    attempt: int = 0,
) -> CommandOutcome:
    """The event saying what became of `command`, with its full causation."""
    return outcome_at(
        command,
        outcome,
        at,
        place.structure,
        place.device,
        reason,
        guard,
        failure,
        latency_s,
        attempt,
    )


def outcome_at(
    command: Command,
    outcome: Outcome,
    at: datetime,
    structure: str | None,
    device: str | None,
    reason: str = "",
    guard: str | None = None,
    failure: FailureReason | None = None,
    latency_s: float | None = None,
    attempt: int = 0,
) -> CommandOutcome:
    """`outcome_event` with its place given as structure and device: the same event,
    without the `Place`. (A dry run's outcome is `events.deferred_outcome`'s.)"""
    rule = command.rule
    return make_outcome(
        new_id(),
        at,
        command.account,
        structure,
        device,
        make_context(command.id, command.correlation, rule, False, command.depth),
        command.id,
        command.action.describe(),
        outcome,
        rule,
        reason,
        guard,
        latency_s,
        command.target,
        command.cause,
        failure,
        attempt,
    )


@dataclass
class _Expectation:
    command: Command
    place: Place
    remaining: dict[str, Any]
    sent_at: float
    expires_at: float
    settled: anyio.Event


@dataclass(frozen=True, slots=True)
class Confirmation:
    command: Command
    place: Place
    latency_s: float

    def outcome(self, at: datetime) -> CommandOutcome:
        return outcome_event(
            self.command,
            Outcome.CONFIRMED,
            at,
            self.place,
            reason="the device's echo",
            latency_s=self.latency_s,
        )


@dataclass(frozen=True, slots=True)
class Expired:
    """A command whose echo never came."""

    command: Command
    place: Place
    waited_s: float


class EchoTracker:
    def __init__(self, ttl_s: float = 120.0, clock: Clock | None = None) -> None:
        self.ttl_s = ttl_s
        self._clock = clock or SystemClock()
        self._pending: dict[str, list[_Expectation]] = {}
        # The targets with a command awaiting its echo, to read only: `is_watching` without
        # its call, for the state diff (once per change).
        self.watched: Mapping[str, object] = self._pending
        self._expired: list[Expired] = []

    def expect(self, command: Command, place: Place | None = None) -> None:
        """Watch for the command's effect on its target (`place` says where it is, for the
        outcome). Latency counts from the first call; each later call (a retry) restarts
        the `ttl_s` wait."""
        place = place or Place(None, command.target)
        expected = command.action.expected()
        now = self._clock.monotonic()
        known = self._entry(command)
        if known is not None:
            known.expires_at = now + self.ttl_s
            return
        if not expected:
            return
        entry = _Expectation(command, place, dict(expected), now, now + self.ttl_s, anyio.Event())
        self._pending.setdefault(command.target, []).append(entry)

    def forget(self, command: Command) -> None:
        entries = self._pending.get(command.target, [])
        keep = []
        for entry in entries:
            if entry.command.id == command.id:
                entry.settled.set()
            else:
                keep.append(entry)
        self._store(command.target, keep)

    def is_pending(self, command: Command) -> bool:
        return self._entry(command) is not None

    def is_watching(self, target: str) -> bool:
        return target in self._pending

    def settled(self, command: Command) -> anyio.Event | None:
        """An event set when the command is confirmed, forgotten or expired."""
        entry = self._entry(command)
        return entry.settled if entry is not None else None

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
        now = self._clock.monotonic()
        cause: Command | None = None
        confirmed: list[Confirmation] = []
        keep: list[_Expectation] = []
        for entry in entries:
            if now > entry.expires_at:
                self._expire(entry, now)
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
                entry.settled.set()
                confirmed.append(Confirmation(entry.command, entry.place, now - entry.sent_at))
        self._store(target, keep)
        return cause, confirmed

    def expired(self) -> list[Expired]:
        """Commands whose echo did not come within `ttl_s`, each reported once."""
        now = self._clock.monotonic()
        for target, entries in list(self._pending.items()):
            keep = []
            for entry in entries:
                if now > entry.expires_at:
                    self._expire(entry, now)
                else:
                    keep.append(entry)
            self._store(target, keep)
        found, self._expired = self._expired, []
        return found

    def _expire(self, entry: _Expectation, now: float) -> None:
        entry.settled.set()
        self._expired.append(Expired(entry.command, entry.place, now - entry.sent_at))

    def _entry(self, command: Command) -> _Expectation | None:
        for entry in self._pending.get(command.target, ()):
            if entry.command.id == command.id:
                return entry
        return None

    def _store(self, target: str, entries: list[_Expectation]) -> None:
        if entries:
            self._pending[target] = entries
        else:
            self._pending.pop(target, None)
