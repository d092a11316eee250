"""Reconnect back-off for every provider: exponential with full jitter.

The first retry after a healthy stretch is immediate: one drop is usually just a drop,
and every second without the subscription is a second of missed changes. After that, a
random delay in [0, min(max, initial·2ⁿ⁻¹)], so a fleet of clients does not return in step.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, max_s: float) -> None:
        self._initial_s, self._max_s, self._attempt = initial_s, max_s, 0

    def next(self) -> float:
        if self._attempt == 0:
            self._attempt = 1
            return 0.0
        ceiling = min(self._max_s, self._initial_s * 2 ** min(self._attempt - 1, 32))
        self._attempt += 1
        return random.uniform(0, ceiling)

    def reset(self) -> None:
        self._attempt = 0
