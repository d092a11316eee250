"""One account's OAuth 2.0 tokens: a refresh-token grant and short-lived access tokens.

The live tokens live in the daemon's `TokenStore`; the refresh token in the settings seeds
it. A new access token is fetched when the held one is within `margin` of expiring, or
after an API refused it (`invalidate`). Some vendors rotate the refresh token on every
refresh (Netatmo: the spent one stops working), so:

- the new set is saved through the `TokenStore` *before* the new access token is used;
- one refresh runs at a time, however many requests want a token (two at once would spend
  the same refresh token twice, and the second would lose the account);
- the stored refresh token is tried first; the configured one only if it differs and the
  stored one was refused (a person authorized again and configured a fresh one).

When no refresh token works, or the client itself is refused, `AuthError`: a person has to
authorize roost again. A token endpoint that fails for now raises `RateLimited`,
`VendorError`, `PayloadError` or `TransportError` (roost/core/errors.py).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import anyio
import httpx
import structlog

from roost.core.clock import Clock
from roost.core.errors import AuthError, PayloadError, RateLimited, VendorError
from roost.providers.base import RequestDeadlines, TokenSet, TokenStore
from roost.providers.deadlines import bounded, deadline
from roost.providers.http import MAX_DETAIL, retry_after, transport_error

log = structlog.get_logger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before the access token expires
DEFAULT_LIFETIME_S = 3600.0  # when the answer does not say
_CLIENT_REFUSED = frozenset({"invalid_client", "unauthorized_client", "unsupported_grant_type"})
_RATE_LIMITED = frozenset({"too_many_connections"})  # Netatmo's token endpoint


class _Refused(Exception):
    """This refresh token was refused; another may still work."""


class RefreshTokenKeeper:
    def __init__(
        self,
        account: str,
        *,
        client: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        store: TokenStore,
        clock: Clock,
        margin: timedelta = REFRESH_MARGIN,
        deadline_s: float = RequestDeadlines.refresh_s,
    ) -> None:
        """`deadline_s` is the whole time one refresh request may take."""
        self.account = account
        self.refreshes = 0
        self._client = client
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._configured = refresh_token
        self._store = store
        self._clock = clock
        self._margin = margin
        self._deadline_s = deadline_s
        self._tokens: TokenSet | None = None
        self._loaded = False
        self._lock = anyio.Lock()

    def __repr__(self) -> str:  # never show a token or the secret
        return f"RefreshTokenKeeper(account={self.account!r}, token_url={self._token_url!r})"

    async def access_token(self) -> str:
        """A valid access token, refreshed (and the rotated set saved) first if needed."""
        async with self._lock:
            if not self._loaded:
                self._tokens = await self._store.load(self.account)
                self._loaded = True
            tokens = self._tokens
            if tokens is None or not self._fresh(tokens):
                tokens = await self._refresh()
            return tokens.access_token

    async def request(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: str,
        *,
        rejected: Callable[[httpx.Response], bool] = lambda response: response.status_code == 401,
        before: Callable[[], Awaitable[None]] | None = None,
        hold_s: float = 0.0,
        **options: Any,
    ) -> httpx.Response:
        """`method url` with a valid access token; when the API `rejected` the token
        (expired or revoked early), once more with a new one. `before` runs before each
        attempt (a request budget's slot); `hold_s` is how long the server may hold a long
        poll; a transport failure (or no whole answer in time) raises `httpx.RequestError`."""
        for retry in (False, True):
            if before is not None:
                await before()
            token = await self.access_token()
            headers = {"Authorization": f"Bearer {token}"}
            response = await bounded(
                client.request(method, url, headers=headers, **options), hold_s=hold_s
            )
            if retry or not rejected(response):
                break
            self.invalidate(token)
        return response

    def invalidate(self, access_token: str) -> None:
        """An API refused this token: the next `access_token()` refreshes (unless another
        request has refreshed since this token was handed out)."""
        tokens = self._tokens
        if tokens is not None and tokens.access_token == access_token:
            self._tokens = TokenSet("", tokens.refresh_token, None, tokens.scope)

    def _fresh(self, tokens: TokenSet) -> bool:
        if not tokens.access_token:
            return False
        return tokens.expires_at is None or self._clock.now() + self._margin < tokens.expires_at

    async def _refresh(self) -> TokenSet:
        stored = self._tokens.refresh_token if self._tokens is not None else None
        refused = "no refresh token configured"
        for refresh_token in [t for t in dict.fromkeys((stored, self._configured)) if t]:
            try:
                tokens = await self._exchange(refresh_token)
            except _Refused as exc:
                refused = str(exc)
                log.warning("oauth.refresh_token_refused", account=self.account, error=refused)
                continue
            await self._store.save(self.account, tokens)  # durable before it is used
            self._tokens = tokens
            self.refreshes += 1
            log.info("oauth.token_refreshed", account=self.account, scope=tokens.scope)
            return tokens
        raise AuthError(f"the refresh token was refused ({refused}); authorize roost again")

    async def _exchange(self, refresh_token: str) -> TokenSet:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        try:
            with deadline(self._deadline_s):
                response = await bounded(self._client.post(self._token_url, data=form))
        except httpx.RequestError as exc:
            raise transport_error(exc) from None
        if response.is_success:
            try:
                return parse_token_response(response.json(), self._clock.now(), refresh_token)
            except ValueError as exc:
                raise PayloadError(f"bad token response: {exc}") from None
        status = response.status_code
        error, description = oauth_error(response)
        detail = f"{error}: {description}" if description else error or f"HTTP {status}"
        if error in _CLIENT_REFUSED:
            raise AuthError(f"the OAuth client was refused ({detail})")
        if status == 429 or error in _RATE_LIMITED:
            raise RateLimited(f"token endpoint rate limited ({detail})", retry_after(response))
        if error == "invalid_grant" or status in (400, 401, 403):
            raise _Refused(detail)
        raise VendorError(f"token endpoint: HTTP {status} {detail}", status)


def parse_token_response(
    body: Mapping[str, Any], now: datetime, spent_refresh_token: str | None = None
) -> TokenSet:
    """A token endpoint answer (`access_token`, `refresh_token`, `expires_in`, `scope`).
    A vendor that does not rotate answers without a refresh token: the spent one stays."""
    if not isinstance(body, Mapping):
        raise ValueError("token response is not an object")
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        refresh = spent_refresh_token
    if not isinstance(access, str) or not access or not refresh:
        raise ValueError("token response without access_token and refresh_token")
    lifetime = body.get("expires_in", body.get("expire_in"))
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float):
        lifetime = DEFAULT_LIFETIME_S
    scope = body.get("scope", "")
    if isinstance(scope, list):
        scope = " ".join(str(s) for s in scope)
    return TokenSet(access, refresh, now + timedelta(seconds=float(lifetime)), str(scope))


def oauth_error(response: httpx.Response) -> tuple[str, str]:
    """(`error`, `error_description`) of a token endpoint answer (RFC 6749 §5.2, or a
    google.rpc envelope)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", response.text.strip()[:MAX_DETAIL]
    if not isinstance(body, dict):
        return "", ""
    error, description = body.get("error"), body.get("error_description", "")
    if isinstance(error, dict):
        name = error.get("status") or error.get("message") or ""
        return str(name), str(error.get("message", ""))[:MAX_DETAIL]
    return str(error or ""), str(description)[:MAX_DETAIL]
