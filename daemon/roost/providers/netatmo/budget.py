"""Netatmo's per-user request limits, kept before a request is sent.

Netatmo allows each user 50 requests every 10 s and 500 every hour (PROTOCOLS.md §4.4);
beyond that it answers 403 "User usage reached" (code 26). Every request an account makes
(polls, event reads, writes) takes a slot here first. Each window keeps some slots for
writes (a write never waits behind the polls) and some for polls (a runaway rule cannot
blind the account), and the limits sit 10 % under Netatmo's because our send time and
Netatmo's arrival time differ by the network's delay.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from roost.core.clock import Clock


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` requests in any `seconds`; polls may not use the last
    `kept_for_writes` of them, writes not the last `kept_for_polls`."""

    seconds: float
    limit: int
    kept_for_writes: int = 0
    kept_for_polls: int = 0


NETATMO_WINDOWS: tuple[Window, ...] = (Window(10.0, 45, 10, 10), Window(3600.0, 450, 90, 150))


class RequestBudget:
    """Sliding windows over the send times of an account's requests."""

    def __init__(self, clock: Clock, windows: Sequence[Window] = NETATMO_WINDOWS) -> None:
        self._clock = clock
        self._windows = tuple(windows)
        self._sent: deque[float] = deque()
        self.waits = 0  # how often a request had to wait for a slot (for tests and metrics)

    def wait_s(self, *, poll: bool) -> float:
        """Seconds until a request may go (0: now), keeping each window's reserves."""
        now = self._clock.monotonic()
        self._forget(now)
        wait = 0.0
        for window in self._windows:
            allowed = window.limit - (window.kept_for_writes if poll else window.kept_for_polls)
            in_window = [t for t in self._sent if t > now - window.seconds]
            if len(in_window) >= allowed:
                # the oldest request that must leave the window before one more fits
                leaving = in_window[len(in_window) - allowed]
                wait = max(wait, leaving + window.seconds - now)
        return wait

    async def acquire(self, *, poll: bool) -> None:
        """Wait for a slot and take it."""
        while (wait := self.wait_s(poll=poll)) > 0:
            self.waits += 1
            await self._clock.sleep(wait + 0.001)
        self._sent.append(self._clock.monotonic())

    def used(self, seconds: float) -> int:
        """Requests sent in the last `seconds`."""
        now = self._clock.monotonic()
        return sum(1 for t in self._sent if t > now - seconds)

    def _forget(self, now: float) -> None:
        horizon = now - max(w.seconds for w in self._windows)
        while self._sent and self._sent[0] <= horizon:
            self._sent.popleft()
