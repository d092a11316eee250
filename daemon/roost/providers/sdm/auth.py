"""OAuth 2.0 for SDM and Pub/Sub: a refresh-token grant and short-lived access tokens.

The live tokens live in the daemon's `TokenStore`; the refresh token in the settings seeds
it. A new access token is fetched when the held one is within `margin_s` of expiring, or
when an API answered 401 for it (`invalidate`). One refresh runs at a time, however many
requests want a token. If the stored refresh token is refused (`invalid_grant`) and the
settings carry a different one (the user authorized again), that one is tried. When no
refresh token works, `AuthError`: a person has to authorize roost again.
"""

from __future__ import annotations

from datetime import timedelta

import anyio
import httpx
import structlog

from roost.clock import Clock
from roost.providers.base import TokenSet, TokenStore
from roost.providers.sdm.errors import ApiError, AuthError, oauth_error

log = structlog.get_logger(__name__)

_PERMANENT = frozenset({"invalid_client", "unauthorized_client", "unsupported_grant_type"})


class OAuthSession:
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
        margin_s: float = 60.0,
    ) -> None:
        self._account = account
        self._client = client
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._configured_refresh = refresh_token
        self._store = store
        self._clock = clock
        self._margin = timedelta(seconds=margin_s)
        self._tokens: TokenSet | None = None
        self._loaded = False
        self._lock = anyio.Lock()
        self.refreshes = 0

    def __repr__(self) -> str:  # never show a token
        return f"OAuthSession(account={self._account!r}, token_url={self._token_url!r})"

    async def access_token(self) -> str:
        """A valid access token, refreshed first if needed. Raises AuthError, ApiError
        (the token endpoint failed for now) or httpx.RequestError."""
        async with self._lock:
            if not self._loaded:
                self._tokens = await self._store.load(self._account)
                self._loaded = True
            tokens = self._tokens
            if tokens is None or not self._fresh(tokens):
                tokens = await self._refresh()
            return tokens.access_token

    def invalidate(self, access_token: str) -> None:
        """An API refused this token: the next `access_token()` refreshes."""
        tokens = self._tokens
        if tokens is not None and tokens.access_token == access_token:
            self._tokens = TokenSet("", tokens.refresh_token, None, tokens.scope)

    def _fresh(self, tokens: TokenSet) -> bool:
        if not tokens.access_token or tokens.expires_at is None:
            return False
        return self._clock.now() + self._margin < tokens.expires_at

    async def _refresh(self) -> TokenSet:
        stored = self._tokens.refresh_token if self._tokens is not None else None
        candidates = [t for t in dict.fromkeys((stored, self._configured_refresh)) if t]
        refused = "no refresh token"
        for refresh_token in candidates:
            response = await self._client.post(
                self._token_url,
                data={
                    "grant_type": "refresh_token",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "refresh_token": refresh_token,
                },
            )
            if response.is_success:
                return await self._accept(response, refresh_token)
            error, description = oauth_error(response)
            detail = f"{error}: {description}" if description else error
            if error in _PERMANENT:
                raise AuthError(f"the OAuth client was refused ({detail})")
            if error != "invalid_grant" and (
                response.status_code >= 500 or response.status_code == 429
            ):
                raise ApiError(response.status_code, error.upper(), description)
            refused = detail or f"HTTP {response.status_code}"
            log.warning("sdm.refresh_token_refused", account=self._account, error=refused)
        raise AuthError(f"the refresh token was refused ({refused}); authorize roost again")

    async def _accept(self, response: httpx.Response, refresh_token: str) -> TokenSet:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ApiError(response.status_code, "", "token answer without an access_token")
        access, expires_in = body["access_token"], body.get("expires_in", 3600)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            expires_in = 3600
        rotated = body.get("refresh_token")
        tokens = TokenSet(
            access_token=access,
            refresh_token=rotated if isinstance(rotated, str) and rotated else refresh_token,
            expires_at=self._clock.now() + timedelta(seconds=float(expires_in)),
            scope=str(body.get("scope", "")),
        )
        await self._store.save(self._account, tokens)  # durable before it is used
        self._tokens = tokens
        self.refreshes += 1
        log.info("sdm.token_refreshed", account=self._account, expires_in_s=expires_in)
        return tokens
