"""Nest web sessions: log in with an email and password, or resume a session token.

`POST {api_url}/session` with `{email, password}` answers `access_token`, `userid` and
`urls.transport_url` (PROTOCOLS.md §2.1); every later call sends `Authorization: Basic
<access_token>`. `GET {api_url}/session` with that header describes an existing session,
which is how a stored or configured token is resumed. A `400` means the credentials were
refused and a `401` that the account wants a second factor: both need a person, so they
raise `LoginRefused`; anything else worth retrying raises `SessionUnavailable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from roost.providers.nest_web.errors import detail
from roost.providers.nest_wwn.errors import parse_retry_after

USER_AGENT = "roost (nest_web)"


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


class LoginRefused(Exception):
    """The service refused the credentials or the token: retrying will not help."""


class SessionExpired(Exception):
    """The token is no longer valid (401/403); a login with the password may renew it."""


class SessionUnavailable(Exception):
    """No session now (network, 429, 5xx, a malformed reply); try again later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


async def login(client: httpx.AsyncClient, api_url: str, email: str, password: str) -> Session:
    """A new session for this account."""
    body = {"email": email, "password": password}
    response = await _request(client, "POST", f"{api_url}/session", json=body)
    if response.status_code == 400:
        raise LoginRefused(f"email or password refused (HTTP 400: {detail(response)})")
    if response.status_code == 401:
        wants_pin = _field(response, "2fa_token") is not None
        reason = "two-factor authentication is on" if wants_pin else "login refused"
        raise LoginRefused(f"{reason} (HTTP 401); configure a session access_token instead")
    return _session(response)


async def resume(client: httpx.AsyncClient, api_url: str, token: str) -> Session:
    """The session of an existing token; `SessionExpired` if it is no longer valid."""
    headers = {"Authorization": f"Basic {token}", "User-Agent": USER_AGENT}
    response = await _request(client, "GET", f"{api_url}/session", headers=headers)
    if response.status_code in (401, 403):
        raise SessionExpired(f"session token refused (HTTP {response.status_code})")
    return _session(response)


async def _request(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        return await client.request(method, url, **kwargs)
    except httpx.RequestError as exc:
        raise SessionUnavailable(f"session call failed: {type(exc).__name__}: {exc}") from None


def _session(response: httpx.Response) -> Session:
    status = response.status_code
    if status == 429:
        retry = parse_retry_after(response.headers.get("Retry-After"))
        raise SessionUnavailable("login rate limited (HTTP 429)", retry)
    if status != 200:
        raise SessionUnavailable(f"session call answered HTTP {status}: {detail(response)}")
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
        expires_at=_expiry(body.get("expires_in")),
    )


def _expiry(value: object) -> datetime | None:
    """`expires_in` is an HTTP date in the replies clients log; anything else is ignored."""
    if not isinstance(value, str):
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None


def _field(response: httpx.Response, name: str) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get(name) if isinstance(body, dict) else None
