"""Sliding windows: "at most N in any window of W seconds", on wall-clock times.

Times are UTC datetimes (not monotonic seconds) so a window can be saved and restored
across a restart as plain ISO strings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime, timedelta


class Window:
    """The times of recent occurrences, forgetting those older than the window."""

    __slots__ = ("limit", "span", "times")

    def __init__(self, limit: int, window_s: float, times: Iterable[datetime] = ()) -> None:
        self.limit = limit
        self.span = timedelta(seconds=window_s)
        self.times: deque[datetime] = deque(times)

    def _forget(self, now: datetime) -> None:
        while self.times and now - self.times[0] >= self.span:
            self.times.popleft()

    def full(self, now: datetime) -> bool:
        self._forget(now)
        return len(self.times) >= self.limit

    def add(self, now: datetime) -> None:
        self.times.append(now)

    def free_at(self) -> datetime | None:
        """When the oldest occurrence leaves the window."""
        return self.times[0] + self.span if self.times else None

    def export(self) -> list[str]:
        return [t.isoformat() for t in self.times]

    def restore(self, times: Iterable[str]) -> None:
        self.times = deque(datetime.fromisoformat(t) for t in times)


class TagLimiter:
    """Notification rate limit per tag: a flapping sensor does not send 100 pushes.

    A notification passes if every one of its keys (its tags, or `rule:<name>` when it has
    none) has room in its window; then it counts against all of them.
    """

    def __init__(self, limit: int = 6, window_s: float = 600.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self.windows: dict[str, Window] = {}

    def keys(self, tags: Iterable[str], rule: str | None) -> list[str]:
        return list(tags) or [f"rule:{rule}"]

    def admit(self, keys: list[str], now: datetime) -> str | None:
        """None if allowed (and counted), else the key that is over its limit."""
        windows = [self.windows.setdefault(k, Window(self.limit, self.window_s)) for k in keys]
        for key, window in zip(keys, windows, strict=True):
            if window.full(now):
                return key
        for window in windows:
            window.add(now)
        return None

    def export(self) -> dict[str, list[str]]:
        return {k: w.export() for k, w in self.windows.items() if w.times}

    def restore(self, data: dict[str, list[str]]) -> None:
        for key, times in data.items():
            self.windows.setdefault(key, Window(self.limit, self.window_s)).restore(times)
