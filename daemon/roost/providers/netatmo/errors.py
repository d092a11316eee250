"""Netatmo's error envelope → one exception type → typed `CommandResult` failures.

API errors are `{"error": {"code": <int>, "message": "<text>"}}` with a 4xx/5xx status
(PROTOCOLS.md §4.3); OAuth errors are `{"error": "<name>"}`. A 200 can still carry
per-module errors in `body.errors` (code 6: unreachable, 23: already in that state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from roost.core.commands import CommandResult, FailureReason
from roost.core.errors import AuthError, VendorError
from roost.providers.http import MAX_DETAIL, describe, member, retry_after, text_of

__all__ = ["ApiError", "AuthError", "failure", "from_response", "from_transport"]

# Netatmo error codes (PROTOCOLS.md §4.3; those marked [M] there are best guesses).
INVALID_TOKEN = 2
TOKEN_EXPIRED = 3
MODULE_UNREACHABLE = 6
DEVICE_NOT_FOUND = 9
MISSING_ARGS = 10
CONCURRENCY_LIMIT = 11
NOT_FOUND = 12
BAD_SCOPE = 13
INVALID_ARGS = 21
ALREADY_SO = 23
USER_USAGE_REACHED = 26
DEVICE_UNREACHABLE = 41

TOKEN_REJECTED = frozenset({INVALID_TOKEN, TOKEN_EXPIRED})


class ApiError(VendorError):
    """A request Netatmo refused, or that got no answer (`status` 0)."""

    def __init__(
        self, status: int, code: int | None, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, status)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        if self.status == 0:
            return self.message
        code = f" (code {self.code})" if self.code is not None else ""
        return f"HTTP {self.status}{code}: {self.message}"

    @property
    def token_rejected(self) -> bool:
        return self.code in TOKEN_REJECTED

    @property
    def rate_limited(self) -> bool:
        return self.code in (USER_USAGE_REACHED, CONCURRENCY_LIMIT) or self.status == 429


def from_response(response: httpx.Response) -> ApiError:
    """The error a non-2xx Netatmo answer means."""
    code, message = _error_of(response)
    return ApiError(response.status_code, code, message, retry_after(response))


def from_transport(exc: httpx.RequestError) -> ApiError:
    return ApiError(0, None, describe(exc)[:MAX_DETAIL])


def module_errors(body: Mapping[str, Any]) -> dict[str, int]:
    """`body.errors` of a 200 answer: module id → error code."""
    found: dict[str, int] = {}
    errors = body.get("errors")
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, Mapping) and isinstance(error.get("id"), str):
                code = error.get("code")
                found[error["id"]] = code if isinstance(code, int) else -1
    return found


def failure(error: ApiError) -> CommandResult:
    """What a refused write means for the command."""
    detail = str(error)
    if error.status == 0:
        timeout = "Timeout" in error.message
        return CommandResult.failure(
            FailureReason.TIMEOUT if timeout else FailureReason.NETWORK, detail
        )
    if error.rate_limited:
        return CommandResult.failure(FailureReason.RATE_LIMITED, detail, error.retry_after_s)
    if error.status >= 500:
        return CommandResult.failure(FailureReason.SERVER_ERROR, detail)
    if error.code in (DEVICE_UNREACHABLE, MODULE_UNREACHABLE):
        return CommandResult.failure(FailureReason.OFFLINE, detail)
    if error.code in (DEVICE_NOT_FOUND, NOT_FOUND) or error.status == 404:
        return CommandResult.failure(FailureReason.NOT_FOUND, detail)
    if error.code in (*TOKEN_REJECTED, BAD_SCOPE) or error.status == 401:
        return CommandResult.failure(FailureReason.UNAUTHORIZED, detail)
    return CommandResult.failure(FailureReason.INVALID, detail)


def partial_failure(body: Mapping[str, Any]) -> CommandResult | None:
    """A 200 whose `body.errors` refuses part of a write; "already so" (23) is no failure."""
    errors = {m: c for m, c in module_errors(body).items() if c != ALREADY_SO}
    if not errors:
        return None
    module, code = next(iter(errors.items()))
    reason = FailureReason.OFFLINE if code == MODULE_UNREACHABLE else FailureReason.INVALID
    return CommandResult.failure(reason, f"module {module}: Netatmo error code {code}")


def _error_of(response: httpx.Response) -> tuple[int | None, str]:
    error = member(response, "error")
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (
            code if isinstance(code, int) else None,
            str(message)[:MAX_DETAIL] if message is not None else response.reason_phrase,
        )
    if isinstance(error, str):  # the OAuth form: {"error": "invalid_grant"}
        return None, error[:MAX_DETAIL]
    return None, text_of(response) or response.reason_phrase
