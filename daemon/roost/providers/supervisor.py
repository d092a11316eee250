"""One account's subscription, held: connect, read, and when it ends say why and go again.

A vendor supplies only the session: open one subscription and read it until it ends,
calling `connected()` once it delivers. How it ended is read from roost's error tree
(roost/core/errors.py), the same for every vendor:

- `AuthError`: AUTH_FAILED, and `run` returns (a person must act);
- any other `ProviderError` (rate limited, vendor error, silent, closed, malformed,
  transport): DISCONNECTED with the reason, then the vendor's `retry_after_s` or the
  back-off;
- any other exception is a crash: RECOVERING with its type, back-off, a fresh session.

A status goes to the sink only when it changes (a new detail of the same state does not
repeat it); `run` starts afresh, so a provider restarted from outside reports again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import structlog

from roost.core.errors import AuthError, ProviderError
from roost.core.events import ConnectionState
from roost.providers.backoff import Backoff
from roost.providers.base import ChangeSink
from roost.providers.http import describe

log = structlog.get_logger(__name__)

Session = Callable[[], Awaitable[None]]
HEALTHY_S = 30.0  # connected this long: the next drop is news, retried at once


@dataclass
class SupervisorStats:
    sessions: int = 0
    disconnects: int = 0
    crashes: int = 0


class Supervisor:
    def __init__(
        self, account: str, *, backoff_initial_s: float = 1.0, backoff_max_s: float = 300.0
    ) -> None:
        self.account = account
        self.state: ConnectionState | None = None
        self.detail = ""
        self.stats = SupervisorStats()
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._sink: ChangeSink | None = None
        self._connected_at: float | None = None  # of this session

    async def run(self, sink: ChangeSink, session: Session) -> None:
        """Hold the subscription until cancelled; returns only on `AuthError`."""
        self._sink, self.state = sink, None
        while True:
            self.stats.sessions += 1
            self._connected_at = None
            try:
                await session()
                ended: BaseException = ProviderError("the subscription ended")
            except AuthError as exc:
                log.error("provider.auth_failed", account=self.account, reason=exc.detail)
                await self.report(ConnectionState.AUTH_FAILED, exc.detail)
                return
            except ProviderError as exc:
                ended = exc
            except Exception as exc:  # a bug: never let it take the account down for good
                log.exception("provider.crashed", account=self.account)
                ended = exc
            await self._ended(ended)

    async def _ended(self, exc: BaseException) -> None:
        connected_at = self._connected_at
        if connected_at is not None and anyio.current_time() - connected_at >= HEALTHY_S:
            self._backoff.reset()  # a session that connects and fails at once keeps backing off
        if isinstance(exc, ProviderError):
            self.stats.disconnects += 1
            state, reason = ConnectionState.DISCONNECTED, exc.detail
            delay = exc.retry_after_s
        else:
            self.stats.crashes += 1
            state, reason, delay = ConnectionState.RECOVERING, f"crashed: {describe(exc)}", None
        if delay is None:
            delay = self._backoff.next()
        log.warning("provider.reconnecting", account=self.account, reason=reason, delay_s=delay)
        await self.report(state, reason)
        await anyio.sleep(delay)

    async def connected(self, detail: str = "") -> None:
        """The subscription delivers (the back-off starts over once it has for a while)."""
        if self._connected_at is None:
            self._connected_at = anyio.current_time()
        await self.report(ConnectionState.CONNECTED, detail)

    async def degraded(self, reason: str) -> None:
        """Subscribed, but something is wrong (a payload skipped, a part unreadable)."""
        await self.report(ConnectionState.DEGRADED, reason)

    async def report(self, state: ConnectionState, detail: str) -> None:
        if state is self.state:
            return
        self.state, self.detail = state, detail
        log.info("provider.status", account=self.account, state=str(state), detail=detail)
        if self._sink is not None:
            await self._sink.status(self.account, state, detail)
