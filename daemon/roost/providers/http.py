"""What an HTTP answer or a transport failure means, the same for every vendor.

A subscription turns a refused request into an exception of roost's tree (`refused`); a
write turns it into a `CommandResult` failure (`failure_for_status`, `transport_failure`).
Vendors pass their own reading of the body (`detail`) and may override a status's reason
(a WWN 400 "not online" is OFFLINE), never the table itself.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from roost.core.commands import Command, CommandResult, FailureReason
from roost.core.errors import AuthError, ProviderError, RateLimited, TransportError, VendorError

MAX_DETAIL = 200
# A fleet worker's writes name the worker and its ownership epoch: a vendor ignores them; a
# log or a simulator can tell two writers of one account apart.
WORKER_HEADER = "X-Roost-Worker"
EPOCH_HEADER = "X-Roost-Epoch"


def writer_headers(command: Command) -> dict[str, str]:
    """The headers naming who sends `command` (none outside a fleet)."""
    if command.writer is None:
        return {}
    worker, epoch = command.writer
    return {WORKER_HEADER: worker, EPOCH_HEADER: str(epoch)}


def reason_for_status(status: int) -> FailureReason:
    if status in (401, 403):
        return FailureReason.UNAUTHORIZED
    if status == 404:
        return FailureReason.NOT_FOUND
    if status == 429:
        return FailureReason.RATE_LIMITED
    if status == 504:
        return FailureReason.TIMEOUT
    if status >= 500:
        return FailureReason.SERVER_ERROR
    return FailureReason.INVALID


def failure_for_status(
    response: httpx.Response,
    detail: str,
    reason: FailureReason | None = None,
    *,
    now: datetime | None = None,
) -> CommandResult:
    """The failure a non-2xx answer to a write means; `detail` is the vendor's message."""
    status = response.status_code
    text = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    reason = reason or reason_for_status(status)
    retry = retry_after(response, now=now) if reason is FailureReason.RATE_LIMITED else None
    return CommandResult.failure(reason, text, retry)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def transport_error(exc: httpx.RequestError) -> TransportError:
    return TransportError(
        describe(exc)[:MAX_DETAIL], timeout=isinstance(exc, httpx.TimeoutException)
    )


def transport_failure(exc: httpx.RequestError) -> CommandResult:
    """A write that got no HTTP answer: a timeout, or any other network failure."""
    timeout = isinstance(exc, httpx.TimeoutException)
    return CommandResult.failure(
        FailureReason.TIMEOUT if timeout else FailureReason.NETWORK, describe(exc)
    )


def result_of(error: ProviderError) -> CommandResult:
    """The failure a write that raised one of roost's provider errors means."""
    if isinstance(error, AuthError):
        return CommandResult.failure(FailureReason.UNAUTHORIZED, error.detail)
    if isinstance(error, RateLimited):
        return CommandResult.failure(FailureReason.RATE_LIMITED, error.detail, error.retry_after_s)
    if isinstance(error, TransportError):
        reason = FailureReason.TIMEOUT if error.timeout else FailureReason.NETWORK
        return CommandResult.failure(reason, error.detail)
    if isinstance(error, VendorError):
        return CommandResult.failure(reason_for_status(error.http_status), error.detail)
    return CommandResult.failure(FailureReason.INVALID, error.detail)


def refused(response: httpx.Response, detail: str) -> ProviderError:
    """The error a refused subscription request raises: 401/403 end it for good."""
    status = response.status_code
    text = f"HTTP {status}: {detail}" if detail else f"HTTP {status}"
    if status in (401, 403):
        return AuthError(f"credentials refused ({text})")
    if status == 429:
        return RateLimited(f"rate limited ({text})", retry_after(response))
    return VendorError(text, status)


def message_of(response: httpx.Response, keys: tuple[str, ...] = ("message", "error")) -> str:
    """The first of `keys` that a JSON object body has as text, else a short piece of the body."""
    for key in keys:
        value = member(response, key)
        if isinstance(value, str) and value:
            return value[:MAX_DETAIL]
    return text_of(response)


def member(response: httpx.Response, key: str) -> Any:
    """`key` of a JSON object body (Google's and Netatmo's `error`), or None."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body.get(key) if isinstance(body, dict) else None


def text_of(response: httpx.Response) -> str:
    """A short piece of the body, for a message."""
    return response.text.strip()[:MAX_DETAIL]


def retry_after(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    return parse_retry_after(response.headers.get("Retry-After"), now=now)


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
    when = http_date(text)
    if when is None:
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def http_date(value: object) -> datetime | None:
    """An HTTP date (`Date`, `Retry-After`, Nest's `expires_in`), aware; None if unusable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
