"""Folding repeated log lines: one line per key per window, with a count of the rest.

A rule stuck refusing (`while True: set_heat(40)`, or a condition that keeps firing)
would otherwise write a line per refusal; the first one of a window is logged, the others
are counted and the count rides on the first line of the next window.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LogFold:
    window_s: float = 60.0
    _open: dict[str, tuple[float, int]] = field(default_factory=dict)  # key → (since, folded)

    def admit(self, key: str, now: float) -> int | None:
        """None: fold this one (counted). Else log it, with the number folded before it."""
        opened = self._open.get(key)
        if opened is not None and now - opened[0] < self.window_s:
            self._open[key] = (opened[0], opened[1] + 1)
            return None
        self._open[key] = (now, 0)
        if len(self._open) > 1024:  # keys are rules or targets; forget the stale ones
            self._open = {k: v for k, v in self._open.items() if now - v[0] < self.window_s}
        return opened[1] if opened is not None else 0
