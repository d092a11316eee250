"""What every provider does the same way: hold the subscription, and the shape of a write.

A vendor's provider subclasses `ProviderCore` and supplies the session (open and read one
subscription, see providers/supervisor.py) and the four steps of a write: find the target,
encode the action, send it, and name what was sent for the log. The template maps every
failure of those steps the same way: no target is NOT_FOUND, an `EncodeError` INVALID, a
provider error or a transport failure by providers/http.py.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any, Generic, Self, TypedDict, TypeVar, cast

import httpx
import structlog

from roost.core.commands import Command, CommandResult, FailureReason
from roost.core.errors import EncodeError, ProviderError
from roost.core.events import ConnectionState
from roost.core.model import Home
from roost.providers.accounts import AccountBase, OAuthAccount
from roost.providers.base import DEFAULT_WRITE_LIMITS, ChangeSink, WriteLimits
from roost.providers.deadlines import deadline
from roost.providers.health import PayloadHealth
from roost.providers.http import result_of, transport_failure
from roost.providers.oauth import REFRESH_MARGIN, RefreshTokenKeeper
from roost.providers.readers import Problems
from roost.providers.registry import ProviderContext
from roost.providers.supervisor import Supervisor

log = structlog.get_logger(__name__)

TargetT = TypeVar("TargetT")
WriteT = TypeVar("WriteT")


class CoreOptions(TypedDict, total=False):
    """What a provider's constructor takes besides its account's settings and context."""

    client: httpx.AsyncClient | None  # else the context's client of the vendor, or its own
    write_limits: WriteLimits | None  # else the vendor's WRITE_LIMITS
    backoff_initial_s: float
    backoff_max_s: float


def counters(*names: str) -> SimpleNamespace:
    """A provider's event counts, for metrics and tests, each starting at 0 (a name not
    given here is an AttributeError, never a silent 0)."""
    return SimpleNamespace(**dict.fromkeys(names, 0))


class ProviderCore(Generic[TargetT, WriteT]):
    """`http_timeout` is the default of the provider's HTTP client; `write_limits` what the
    dispatcher holds its writes to (base.WriteLimits). The client is the provider's own
    (closed by `aclose`) or one its vendor's accounts share (`ProviderContext.http_client`)."""

    http_timeout = httpx.Timeout(5.0)
    write_limits = DEFAULT_WRITE_LIMITS
    stats: SimpleNamespace  # counters(...)

    def __init__(
        self,
        settings: AccountBase,
        context: ProviderContext | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        write_limits: WriteLimits | None = None,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
    ) -> None:
        """`context` lends the daemon's clock, token store and memory (without one: a clock
        and stores of the provider's own); without a `client` it has its own too."""
        self.account = settings.name
        self.home: Home | None = None
        self.supervisor = Supervisor(
            self.account, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s
        )
        self.context = context or ProviderContext()
        self._clock = self.context.clock
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=self.http_timeout)
        if write_limits is not None:
            self.write_limits = write_limits

    @classmethod
    def build(cls, settings: AccountBase, context: ProviderContext) -> Self:
        """The provider the daemon runs: on the HTTP client its vendor's accounts share."""
        return cls(
            settings, context, client=context.http_client(settings.provider, cls.http_timeout)
        )

    def __repr__(self) -> str:  # never a token, a password or a secret
        return f"{type(self).__name__}(account={self.account!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    @property
    def state(self) -> ConnectionState | None:
        return self.supervisor.state

    async def run(self, sink: ChangeSink) -> None:
        """Hold the subscription until cancelled; returns only when the credentials fail."""
        with deadline(self.context.deadlines.read_s):
            await self.supervisor.run(sink, lambda: self._subscription(sink))

    async def _subscription(self, sink: ChangeSink) -> None:
        """Open one subscription and read it until it ends (by raising a `ProviderError`)."""
        raise NotImplementedError

    # --- writes ----------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResult:
        """One write: find the target, encode the action, send it, map the outcome."""
        target = self._target(command.target)
        if target is None:
            return self._no_target(command.target)
        try:
            write = self._encode(command, target)
        except EncodeError as exc:
            return CommandResult.failure(FailureReason.INVALID, str(exc))
        try:
            with deadline(self.context.deadlines.command_s, within_s=self._time_left(command)):
                result = await self._send(write, command)
        except ProviderError as exc:
            result = result_of(exc)
        except httpx.RequestError as exc:
            result = transport_failure(exc)
        log.info(
            "provider.write",
            account=self.account,
            command=command.id,
            **self._describe(write),
            ok=result.ok,
            reason=str(result.reason) if result.reason else None,
            detail=result.detail,
        )
        return result

    def _time_left(self, command: Command) -> float:
        """Seconds until the command's own deadline: no request of it runs past that."""
        return (command.deadline - self._clock.now()).total_seconds()

    def _target(self, target_id: str) -> TargetT | None:
        """The home's device or structure (a vendor whose targets are its own records
        overrides this)."""
        if self.home is None:
            return None
        found = self.home.devices.get(target_id) or self.home.structures.get(target_id)
        return cast(TargetT | None, found)

    def _no_target(self, target_id: str) -> CommandResult:
        return CommandResult.failure(FailureReason.NOT_FOUND, f"unknown target {target_id}")

    def _encode(self, command: Command, target: TargetT) -> WriteT:
        raise NotImplementedError

    async def _send(self, write: WriteT, command: Command) -> CommandResult:
        raise NotImplementedError

    def _describe(self, write: WriteT) -> dict[str, Any]:
        """What the log says was sent."""
        return {}

    def _keeper(
        self, settings: OAuthAccount, token_url: str, margin: timedelta = REFRESH_MARGIN
    ) -> RefreshTokenKeeper:
        """The account's OAuth tokens, refreshed over the provider's client and kept in
        the context's token store."""
        client_secret, refresh_token = settings.oauth_secrets()
        return RefreshTokenKeeper(
            self.account,
            client=self._client,
            token_url=token_url,
            client_id=settings.client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            store=self.context.tokens,
            clock=self._clock,
            margin=margin,
            deadline_s=self.context.deadlines.refresh_s,
        )

    # --- what a subscription read ----------------------------------------------------------

    def _review(self, health: PayloadHealth, problems: Problems, home: Home | None) -> None:
        """Hand a normalization's problems to the account's health; those of targets no
        longer in `home` are forgotten (None: its targets are the last review's)."""
        keep = None if home is None else home.devices.keys() | home.structures.keys()
        health.review(problems, keep=keep)

    def _skipped(self, what: str, exc: Exception, health: PayloadHealth | None = None) -> None:
        """A payload (or a part of one) that could not be used: counted, logged and, with
        `health`, reported as skipped."""
        self.stats.malformed += 1
        log.warning("provider.skipped", account=self.account, what=what, error=str(exc)[:200])
        if health is not None:
            health.reject(str(exc)[:200])
