"""When an SDM quota window frees up, as far as this provider can tell.

SDM's limits are per minute, in windows that begin with the first request (PROTOCOLS.md
§3.4): executeCommand per user, and each trait command per device. RESOURCE_EXHAUSTED
carries no Retry-After, so the provider remembers when it sent what, and a refusal is
retried when the oldest send of its windows is a minute old — not sooner (another 429),
not a blind minute later. Other projects' commands to the same device count too and are
invisible here: the answer is a lower bound, never more than one window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0
MIN_RETRY_S = 1.0


class SendLog:
    def __init__(self, now: Callable[[], float], window_s: float = WINDOW_S) -> None:
        self._now = now
        self._window_s = window_s
        self._sent: dict[str, deque[float]] = {}

    def record(self, *keys: str) -> None:
        now = self._now()
        for key in keys:
            self._prune(key, now).append(now)

    def retry_after(self, *keys: str) -> float:
        """Seconds until every window of these keys has rolled past its oldest send."""
        now = self._now()
        waits = [sent[0] + self._window_s - now for key in keys if (sent := self._prune(key, now))]
        return min(self._window_s, max([MIN_RETRY_S, *waits]))

    def _prune(self, key: str, now: float) -> deque[float]:
        sent = self._sent.setdefault(key, deque())
        while sent and now - sent[0] >= self._window_s:
            sent.popleft()
        return sent
