"""Google API errors → typed failures (PROTOCOLS.md §3.3).

Google answers with `{"error": {"code", "message", "status"}}` (google.rpc.Status); the
`status` says what happened, more precisely than the HTTP code: FAILED_PRECONDITION (the
device's state refuses the command — or it is offline), INVALID_ARGUMENT, UNAUTHENTICATED,
PERMISSION_DENIED, NOT_FOUND, RESOURCE_EXHAUSTED (quota), INTERNAL / UNAVAILABLE. The OAuth
token endpoint speaks RFC 6749 instead: `{"error": "invalid_grant", "error_description"}`.
"""

from __future__ import annotations

import json

import httpx

from roost.commands import CommandResult, FailureReason

_MAX_DETAIL = 200
# A quota window lasts until the end of the minute that began with its first request.
QUOTA_RETRY_S = 60.0

_BY_STATUS = {
    "INVALID_ARGUMENT": FailureReason.INVALID,
    "FAILED_PRECONDITION": FailureReason.INVALID,
    "OUT_OF_RANGE": FailureReason.INVALID,
    "UNAUTHENTICATED": FailureReason.UNAUTHORIZED,
    "PERMISSION_DENIED": FailureReason.UNAUTHORIZED,
    "NOT_FOUND": FailureReason.NOT_FOUND,
    "RESOURCE_EXHAUSTED": FailureReason.RATE_LIMITED,
    "INTERNAL": FailureReason.SERVER_ERROR,
    "UNAVAILABLE": FailureReason.SERVER_ERROR,
    "UNKNOWN": FailureReason.SERVER_ERROR,
    "DEADLINE_EXCEEDED": FailureReason.TIMEOUT,
}


class ApiError(Exception):
    """A non-2xx answer of a Google API. `status` is the google.rpc status name, or ""."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(http_status, status, message)
        self.http_status, self.status, self.message = http_status, status, message

    def __str__(self) -> str:
        status = f" {self.status}" if self.status else ""
        return f"HTTP {self.http_status}{status}: {self.message}".rstrip(": ")

    @property
    def reason(self) -> FailureReason:
        reason = _BY_STATUS.get(self.status)
        if reason is None:
            reason = _by_http_status(self.http_status)
        if self.status == "FAILED_PRECONDITION" and "offline" in self.message.lower():
            return FailureReason.OFFLINE
        return reason

    @property
    def is_auth(self) -> bool:
        return self.http_status == 401 or self.status == "UNAUTHENTICATED"

    @property
    def retryable(self) -> bool:
        return self.reason.retryable

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        status, message = _google_status(response)
        return cls(response.status_code, status, message)


class AuthError(Exception):
    """The OAuth grant is gone (revoked refresh token, deleted client): a person must act."""


def to_result(error: ApiError) -> CommandResult:
    retry = QUOTA_RETRY_S if error.reason is FailureReason.RATE_LIMITED else None
    return CommandResult.failure(error.reason, str(error), retry)


def from_transport_error(exc: httpx.RequestError) -> CommandResult:
    detail = describe_transport_error(exc)
    if isinstance(exc, httpx.TimeoutException):
        return CommandResult.failure(FailureReason.TIMEOUT, detail)
    return CommandResult.failure(FailureReason.NETWORK, detail)


def describe_transport_error(exc: httpx.RequestError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def oauth_error(response: httpx.Response) -> tuple[str, str]:
    """(`error`, `error_description`) of a token endpoint answer."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", response.text.strip()[:_MAX_DETAIL]
    if not isinstance(body, dict):
        return "", ""
    error, description = body.get("error"), body.get("error_description", "")
    if isinstance(error, dict):  # some Google endpoints answer with the rpc envelope
        return str(error.get("status", "")), str(error.get("message", ""))[:_MAX_DETAIL]
    return str(error or ""), str(description)[:_MAX_DETAIL]


def _google_status(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", response.text.strip()[:_MAX_DETAIL]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", response.text.strip()[:_MAX_DETAIL]
    status, message = error.get("status"), error.get("message")
    return (
        status if isinstance(status, str) else "",
        message[:_MAX_DETAIL] if isinstance(message, str) else "",
    )


def _by_http_status(code: int) -> FailureReason:
    if code == 401 or code == 403:
        return FailureReason.UNAUTHORIZED
    if code == 404:
        return FailureReason.NOT_FOUND
    if code == 429:
        return FailureReason.RATE_LIMITED
    if code == 504:
        return FailureReason.TIMEOUT
    if code >= 500:
        return FailureReason.SERVER_ERROR
    return FailureReason.INVALID
