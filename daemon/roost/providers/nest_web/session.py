"""Nest web sessions: log in with a Google account or an email and password, or resume a
session token.

Google accounts (every account today) log in as the web app does (PROTOCOLS.md §2.1): the
`issue_token` URL and the cookies of a browser signed in to home.nest.com give a Google
access token; the Nest auth proxy's `issue_jwt` turns it into a Nest JWT (an hour) that
serves as the session token. When the cookies have expired Google answers
`USER_LOGGED_OUT`, which needs a person (`LoginRefused`). Password login is legacy: only
Nest accounts that never moved to Google have one.

`POST {api_url}/session` with `{email, password}` answers `access_token`, `userid` and
`urls.transport_url` (PROTOCOLS.md §2.1); every later call sends `Authorization: Basic
<access_token>`. `GET {api_url}/session` with that header and the `cztoken` cookie (as the
web app and homebridge-nest send them) describes an existing session, which is how a stored
or configured token is resumed. A `400` means the credentials were
refused and a `401` that the account wants a second factor: both need a person, so they
raise `LoginRefused`; anything else worth retrying raises `SessionUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import httpx

from roost.core.errors import AuthError, ProviderError
from roost.providers.deadlines import bounded
from roost.providers.http import describe, http_date, member, message_of, retry_after
from roost.providers.readers import parse_time

# The service is a browser's back end; clients that work today present a browser's agent.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
GOOGLE_REFERER = "https://accounts.google.com/o/oauth2/iframe"
AUTH_PROXY_URL = "https://nestauthproxyservice-pa.googleapis.com"
JWT_LIFETIME = "3600s"


@dataclass(frozen=True, slots=True)
class PasswordLogin:
    """A legacy Nest account's email and password."""

    email: str
    password: str

    def __repr__(self) -> str:
        return f"PasswordLogin(email={self.email!r})"


@dataclass(frozen=True, slots=True)
class GoogleLogin:
    """A Google account: the web app's `issue_token` URL and the browser's Google cookies."""

    issue_token_url: str
    cookies: str
    api_key: str
    auth_proxy_url: str = AUTH_PROXY_URL

    def __repr__(self) -> str:  # the URL carries a login hint, the cookies are the login
        return "GoogleLogin(…)"


LoginMethod = PasswordLogin | GoogleLogin


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    user_id: str
    transport_url: str
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # never show the token
        return f"Session(user_id={self.user_id!r}, transport_url={self.transport_url!r})"

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Basic {self.token}",
            "X-nl-user-id": self.user_id,
            "X-nl-protocol-version": "1",
            "User-Agent": USER_AGENT,
        }


class LoginRefused(AuthError):
    """The service refused the credentials or the token: retrying will not help."""


class SessionExpired(ProviderError):
    """The token is no longer valid (401/403); a login with the password may renew it."""


class SessionUnavailable(ProviderError):
    """No session now (network, 429, 5xx, a malformed reply); try again later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


async def login(client: httpx.AsyncClient, api_url: str, method: LoginMethod) -> Session:
    """A new session for this account."""
    if isinstance(method, GoogleLogin):
        return await google_login(client, api_url, method)
    return await password_login(client, api_url, method.email, method.password)


async def google_login(client: httpx.AsyncClient, api_url: str, method: GoogleLogin) -> Session:
    """issue_token (cookies) → Google access token → issue_jwt → Nest JWT → its session."""
    google_token = await _google_token(client, method)
    headers = {
        "Authorization": f"Bearer {google_token}",
        "x-goog-api-key": method.api_key,
        "User-Agent": USER_AGENT,
        "Referer": "https://home.nest.com/",
    }
    body = {
        "embed_google_oauth_access_token": True,
        "expire_after": JWT_LIFETIME,
        "google_oauth_access_token": google_token,
        "policy_id": "authproxy-oauth-policy",
    }
    url = f"{method.auth_proxy_url.rstrip('/')}/v1/issue_jwt"
    response = await _request(client, "POST", url, json=body, headers=headers)
    if response.status_code in (401, 403):
        raise LoginRefused(f"the Nest auth proxy refused the login (HTTP {response.status_code})")
    jwt, expires_at = _jwt(response)
    session = await resume(client, api_url, jwt)
    return replace(session, expires_at=expires_at or session.expires_at)


async def _google_token(client: httpx.AsyncClient, method: GoogleLogin) -> str:
    headers = {
        "Cookie": method.cookies,
        "Referer": GOOGLE_REFERER,
        "Sec-Fetch-Mode": "cors",
        "X-Requested-With": "XmlHttpRequest",
        "User-Agent": USER_AGENT,
    }
    response = await _request(client, "GET", method.issue_token_url, headers=headers)
    if response.status_code == 429 or response.status_code >= 500:
        raise SessionUnavailable(f"Google's issue_token answered HTTP {response.status_code}")
    error, token = member(response, "error"), member(response, "access_token")
    if error is not None or not isinstance(token, str) or not token:
        raise LoginRefused(
            f"Google refused the browser cookies ({error or 'no access token'}): sign in to "
            "home.nest.com again and copy issue_token and cookies anew (roost auth nest-web)"
        )
    return token


def _jwt(response: httpx.Response) -> tuple[str, datetime | None]:
    if response.status_code != 200:
        raise SessionUnavailable(f"issue_jwt answered HTTP {response.status_code}")
    jwt, claims = member(response, "jwt"), member(response, "claims")
    if not isinstance(jwt, str) or not jwt:
        raise SessionUnavailable("malformed issue_jwt reply")
    ends = claims.get("expirationTime") if isinstance(claims, dict) else None
    return jwt, parse_time(ends)


async def password_login(
    client: httpx.AsyncClient, api_url: str, email: str, password: str
) -> Session:
    """A new session from a legacy Nest account's email and password."""
    body = {"email": email, "password": password}
    response = await _request(client, "POST", f"{api_url}/session", json=body)
    if response.status_code == 400:
        raise LoginRefused(f"email or password refused (HTTP 400: {message_of(response)})")
    if response.status_code == 401:
        wants_pin = member(response, "2fa_token") is not None
        reason = "two-factor authentication is on" if wants_pin else "login refused"
        raise LoginRefused(f"{reason} (HTTP 401); configure a session access_token instead")
    return _session(response)


async def resume(client: httpx.AsyncClient, api_url: str, token: str) -> Session:
    """The session of an existing token; `SessionExpired` if it is no longer valid."""
    headers = {
        "Authorization": f"Basic {token}",
        "Cookie": f"cztoken={token}",
        "User-Agent": USER_AGENT,
    }
    response = await _request(client, "GET", f"{api_url}/session", headers=headers)
    if response.status_code in (401, 403):
        raise SessionExpired(f"session token refused (HTTP {response.status_code})")
    return _session(response)


async def _request(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        return await bounded(client.request(method, url, **kwargs))
    except httpx.RequestError as exc:
        raise SessionUnavailable(f"session call failed: {describe(exc)}") from None


def _session(response: httpx.Response) -> Session:
    status = response.status_code
    if status == 429:
        raise SessionUnavailable("login rate limited (HTTP 429)", retry_after(response))
    if status != 200:
        raise SessionUnavailable(f"session call answered HTTP {status}: {message_of(response)}")
    try:
        body = response.json()
        token, user_id = body["access_token"], body["userid"]
        transport_url = body["urls"]["transport_url"]
    except (ValueError, KeyError, TypeError):
        raise SessionUnavailable("malformed session reply") from None
    if not isinstance(token, str) or not token or not isinstance(transport_url, str):
        raise SessionUnavailable("malformed session reply")
    return Session(
        token=token,
        user_id=str(user_id),
        transport_url=transport_url.rstrip("/"),
        expires_at=http_date(body.get("expires_in")),
    )
