"""OAuth2 for Netatmo: a 3-hour access token and a refresh token that rotates.

Every refresh invalidates the refresh token it spent (OPERATIONS.md §1.5). So the new set
is saved through the `TokenStore` *before* the new access token is used, and refreshes are
serialized: two at once would spend the same refresh token twice and the second would
lose the account. The configured refresh token only seeds the store; once a rotated one is
saved, that one is used, and the seed is tried again only if the saved one is refused (a
person re-authorized and put a fresh token in the configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
import structlog

from roost.clock import Clock
from roost.providers.base import TokenSet, TokenStore
from roost.providers.netatmo.errors import (
    CONCURRENCY_LIMIT,
    ApiError,
    AuthError,
    from_response,
    from_transport,
)

log = structlog.get_logger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before the access token expires
_REFUSED = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


def parse_token_response(body: Mapping[str, Any], now: datetime) -> TokenSet:
    """A token endpoint answer (`access_token`, `refresh_token`, `expires_in`, `scope`)."""
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
        raise ValueError("token response without access_token and refresh_token")
    lifetime = body.get("expires_in", body.get("expire_in"))
    expires_at = None
    if isinstance(lifetime, int | float) and not isinstance(lifetime, bool):
        expires_at = now + timedelta(seconds=float(lifetime))
    scope = body.get("scope", "")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    return TokenSet(access, refresh, expires_at, str(scope))


class TokenKeeper:
    """One account's live tokens: hands out a valid access token, refreshing when due."""

    def __init__(
        self,
        account: str,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        seed_refresh_token: str,
        store: TokenStore,
        clock: Clock,
        client: httpx.AsyncClient,
    ) -> None:
        self.account = account
        self.refreshes = 0
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._seed = seed_refresh_token
        self._store = store
        self._clock = clock
        self._client = client
        self._tokens: TokenSet | None = None
        self._loaded = False
        self._lock = anyio.Lock()

    def __repr__(self) -> str:  # never show a token or the secret
        return f"TokenKeeper(account={self.account!r})"

    async def access_token(self) -> str:
        """A valid access token; refreshes (and saves the rotated set) first when due."""
        async with self._lock:
            await self._load()
            tokens = self._tokens
            if tokens is None or not tokens.access_token or self._due(tokens):
                tokens = await self._refresh()
            return tokens.access_token

    async def rejected(self, access_token: str) -> None:
        """Netatmo refused `access_token` (invalid or expired): refresh, unless another
        request has already done so since that token was handed out."""
        async with self._lock:
            if self._tokens is not None and self._tokens.access_token != access_token:
                return
            await self._refresh()

    async def _load(self) -> None:
        if not self._loaded:
            self._tokens = await self._store.load(self.account)
            self._loaded = True

    def _due(self, tokens: TokenSet) -> bool:
        return tokens.expires_at is not None and self._clock.now() >= (
            tokens.expires_at - REFRESH_MARGIN
        )

    async def _refresh(self) -> TokenSet:
        held = self._tokens.refresh_token if self._tokens is not None else None
        candidates = [t for t in (held, self._seed) if t]
        if held == self._seed:
            candidates = candidates[:1]
        last: AuthError | None = None
        for refresh_token in candidates:
            try:
                tokens = await self._exchange(refresh_token)
            except AuthError as exc:
                last = exc
                continue
            await self._store.save(self.account, tokens)  # durable before first use
            self._tokens = tokens
            self.refreshes += 1
            log.info("netatmo.token_refreshed", account=self.account, scope=tokens.scope)
            return tokens
        raise last or AuthError("no refresh token configured")

    async def _exchange(self, refresh_token: str) -> TokenSet:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        try:
            response = await self._client.post(self._token_url, data=form)
        except httpx.RequestError as exc:
            raise from_transport(exc) from None
        if response.is_success:
            try:
                return parse_token_response(response.json(), self._clock.now())
            except ValueError as exc:
                raise ApiError(response.status_code, None, f"bad token response: {exc}") from None
        error = from_response(response)
        if error.message == "too_many_connections":  # the token endpoint's rate limit
            raise ApiError(error.status, CONCURRENCY_LIMIT, error.message, error.retry_after_s)
        if error.message in _REFUSED or response.status_code in (401, 403):
            raise AuthError(f"refresh token refused: {error}")
        raise error
