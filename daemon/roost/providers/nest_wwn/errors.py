"""Works with Nest HTTP errors → typed `CommandResult` failures.

WWN error bodies are `{"error", "type", "message", "instance", "details"?}`; the
`message` is what a person should read. Transport errors never reach the caller raw.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from roost.commands import CommandResult, FailureReason

_MAX_DETAIL = 200


def from_response(response: httpx.Response, *, now: datetime | None = None) -> CommandResult:
    """The failure a non-2xx WWN response means."""
    status = response.status_code
    message = vendor_message(response)
    detail = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status == 400:
        offline = "not online" in message.lower()
        return CommandResult.failure(
            FailureReason.OFFLINE if offline else FailureReason.INVALID, detail
        )
    if status in (401, 403):
        return CommandResult.failure(FailureReason.UNAUTHORIZED, detail)
    if status == 404:
        return CommandResult.failure(FailureReason.NOT_FOUND, detail)
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return CommandResult.failure(FailureReason.RATE_LIMITED, detail, retry_after)
    if status >= 500:
        return CommandResult.failure(FailureReason.SERVER_ERROR, detail)
    return CommandResult.failure(FailureReason.INVALID, detail)


def from_transport_error(exc: httpx.RequestError) -> CommandResult:
    """A request that got no HTTP answer: a timeout, or any other network failure."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return CommandResult.failure(FailureReason.TIMEOUT, detail)
    return CommandResult.failure(FailureReason.NETWORK, detail)


def vendor_message(response: httpx.Response) -> str:
    """The WWN `message` (or `error`) of an error body, else a short piece of the text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip()[:_MAX_DETAIL]
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:_MAX_DETAIL]
    return response.text.strip()[:_MAX_DETAIL]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
