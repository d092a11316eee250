"""Nest web HTTP errors → typed `CommandResult` failures.

No public source shows the service's error bodies, so only the status is relied on; a
short piece of the body goes into the detail for a person to read. 401/403 mean the
session is gone (the provider logs in again before it gives up); 409 means a conditional
put met a newer bucket revision.
"""

from __future__ import annotations

import httpx

from roost.commands import CommandResult, FailureReason
from roost.providers.nest_wwn.errors import parse_retry_after

_MAX_DETAIL = 200


def from_response(response: httpx.Response) -> CommandResult:
    """The failure a non-2xx answer to a put means."""
    status = response.status_code
    text = detail(response)
    message = f"HTTP {status}: {text}" if text else f"HTTP {status}"
    if status in (401, 403):
        return CommandResult.failure(FailureReason.UNAUTHORIZED, message)
    if status == 404:
        return CommandResult.failure(FailureReason.NOT_FOUND, message)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return CommandResult.failure(FailureReason.RATE_LIMITED, message, retry_after)
    if status >= 500:
        return CommandResult.failure(FailureReason.SERVER_ERROR, message)
    return CommandResult.failure(FailureReason.INVALID, message)


def from_transport_error(exc: httpx.RequestError) -> CommandResult:
    """A request that got no HTTP answer: a timeout, or any other network failure."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return CommandResult.failure(FailureReason.TIMEOUT, text)
    return CommandResult.failure(FailureReason.NETWORK, text)


def detail(response: httpx.Response) -> str:
    """The body's `message` (or `error`) if it is a JSON object with one, else its text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:_MAX_DETAIL]
    return response.text.strip()[:_MAX_DETAIL]
