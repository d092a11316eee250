"""The seam between a vendor and the rest of roost.

A provider holds one account's subscription and performs its writes. It reports what it
sees only through a `ChangeSink` (implemented by `state`), and answers every write with a
`CommandResult`: vendor errors become typed failures, never raw exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from roost.core.commands import Command, CommandResult
from roost.core.events import ConnectionState, DeviceEvent
from roost.core.model import Change, Home
from roost.core.secret import Secret
from roost.providers.health import PayloadHealth


class ChangeSink(Protocol):
    async def snapshot(self, account: str, home: Home, at: datetime) -> None:
        """The full picture (on connect, after every reconnect, or on a full put)."""

    async def patch(self, account: str, changes: Sequence[Change], at: datetime) -> None:
        """Some attributes changed."""

    async def device_event(self, account: str, event: DeviceEvent) -> None:
        """A momentary event: motion, person, sound, chime."""

    async def status(self, account: str, state: ConnectionState, detail: str = "") -> None:
        """The subscription connected, dropped, or lost its authorization."""

    def payload_health(self, account: str) -> PayloadHealth:
        """Where the account's unreadable fields and skipped payloads are reported (its
        "degraded" status and counts)."""

    def home(self, account: str) -> Home:
        """The account's home as last known (before its first snapshot: as restored from
        the store at start, else empty)."""


class Provider(Protocol):
    """One instance per account."""

    account: str

    async def run(self, sink: ChangeSink) -> None:
        """Hold the subscription until cancelled: connect, stream, reconnect with back-off."""

    async def execute(self, command: Command) -> CommandResult:
        """One vendor write."""

    async def aclose(self) -> None:
        """Release connections; called once when the daemon stops."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket: `burst` writes may go at once, then one more every `every_s` seconds."""

    burst: int
    every_s: float


@dataclass(frozen=True, slots=True)
class WriteLimits:
    """How fast roost may write to a vendor, as the vendor documents it.

    A provider may declare these as a `write_limits` attribute (optional: providers that
    don't get `DEFAULT_WRITE_LIMITS`). The dispatcher delays a write, never refuses it,
    until both buckets allow it; a 429 with Retry-After also pauses the whole account.
    `per_device` counts writes to one device or structure, `per_account` all the
    account's writes (leave room for the provider's own reads and polls there).
    """

    per_device: Rate | None = None
    per_account: Rate | None = None


DEFAULT_WRITE_LIMITS = WriteLimits(per_device=Rate(3, 20.0), per_account=Rate(10, 6.0))


@dataclass(frozen=True)
class RequestDeadlines:
    """Seconds one whole vendor request (headers and body) may take, by kind of call
    (providers/deadlines.py)."""

    read_s: float = 60.0  # a poll, a subscription's request, a login
    refresh_s: float = 30.0  # an OAuth token refresh
    command_s: float = 30.0  # a write; never past the command's own deadline


def write_limits(provider: object) -> WriteLimits:
    """The provider's declared `write_limits`, or the default."""
    declared = getattr(provider, "write_limits", None)
    return declared if isinstance(declared, WriteLimits) else DEFAULT_WRITE_LIMITS


@dataclass(frozen=True)
class OAuthApp:
    """How `roost auth` authorizes an account of a vendor. Without `client_id` the app is
    the person's own (given on the command line); `pin`: the vendor shows the code to
    the person instead of redirecting."""

    authorize_url: str
    token_url: str
    scope: str = ""
    pkce: bool = False
    pin: bool = False
    scope_in_exchange: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)
    client_id: str | None = None
    client_secret: Secret | None = None


@dataclass(frozen=True)
class TokenSet:
    """An account's OAuth tokens. `refresh_token` rotates on some vendors (Netatmo)."""

    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    scope: str = ""

    def __repr__(self) -> str:
        return f"TokenSet(expires_at={self.expires_at!r}, scope={self.scope!r})"


class TokenStore(Protocol):
    """Where a provider keeps its live tokens. `save` is durable when it returns, and a
    crash leaves the old or the new set, never a torn one: save the rotated refresh token
    before using the new access token."""

    async def load(self, account: str) -> TokenSet | None: ...

    async def save(self, account: str, tokens: TokenSet) -> None: ...


class MemoryTokenStore:
    """A `TokenStore` that forgets on restart (tests, the demo)."""

    def __init__(self) -> None:
        self._tokens: dict[str, TokenSet] = {}

    async def load(self, account: str) -> TokenSet | None:
        return self._tokens.get(account)

    async def save(self, account: str, tokens: TokenSet) -> None:
        self._tokens[account] = tokens


class ProviderMemory(Protocol):
    """Small durable values a provider keeps across restarts (an events cursor, the ids
    of events already reported). `put` is durable when it returns."""

    async def get(self, account: str, key: str) -> str | None: ...

    async def put(self, account: str, key: str, value: str) -> None: ...


class MemoryProviderMemory:
    """A `ProviderMemory` that forgets on restart (tests, the demo)."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], str] = {}

    async def get(self, account: str, key: str) -> str | None:
        return self._values.get((account, key))

    async def put(self, account: str, key: str, value: str) -> None:
        self._values[(account, key)] = value
