"""Vendor write limits, applied by the dispatcher before a write is sent.

A provider declares its `WriteLimits` (see `providers.base`); `WriteThrottle` turns them
into token buckets, one per device and one per account, plus a pause for the whole
account after the vendor said 429. A limit only ever delays a write, it never refuses
one: the command's deadline decides when waiting is no longer worth it.
"""

from __future__ import annotations

from roost.providers.base import Rate, WriteLimits


class TokenBucket:
    """`burst` writes may go at once; after that, one more every `every_s` seconds."""

    def __init__(self, rate: Rate, now: float) -> None:
        self._rate = rate
        self._tokens = float(rate.burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        if self._rate.every_s <= 0:
            self._tokens = float(self._rate.burst)
        else:
            self._tokens = min(self._rate.burst, self._tokens + elapsed / self._rate.every_s)

    def wait_s(self, now: float) -> float:
        """Seconds until a write may go (0 when one may go now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) * self._rate.every_s

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1


class WriteThrottle:
    """One account's write limits: a bucket per target, one for the account, and a pause."""

    def __init__(self, limits: WriteLimits) -> None:
        self.limits = limits
        self._account: TokenBucket | None = None
        self._targets: dict[str, TokenBucket] = {}
        self._paused_until = 0.0

    def wait_s(self, target: str, now: float) -> float:
        """Seconds until a write to `target` may go without breaking a limit."""
        waits = [self._paused_until - now]
        for bucket in self._buckets(target, now):
            waits.append(bucket.wait_s(now))
        return max(0.0, *waits)

    def take(self, target: str, now: float) -> None:
        """Count a write to `target` that is being sent now."""
        for bucket in self._buckets(target, now):
            bucket.take(now)

    def pause(self, until: float) -> None:
        """The vendor asked to wait (429 with Retry-After): no write before `until`."""
        self._paused_until = max(self._paused_until, until)

    def _buckets(self, target: str, now: float) -> list[TokenBucket]:
        found = []
        if self.limits.per_account is not None:
            if self._account is None:
                self._account = TokenBucket(self.limits.per_account, now)
            found.append(self._account)
        if self.limits.per_device is not None:
            bucket = self._targets.get(target)
            if bucket is None:
                bucket = self._targets[target] = TokenBucket(self.limits.per_device, now)
            found.append(bucket)
        return found
