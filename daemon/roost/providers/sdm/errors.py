"""Google API errors → typed failures (PROTOCOLS.md §3.3).

Google answers with `{"error": {"code", "message", "status"}}` (google.rpc.Status); the
`status` says what happened, more precisely than the HTTP code: FAILED_PRECONDITION (the
device's state refuses the command — or it is offline), INVALID_ARGUMENT, UNAUTHENTICATED,
PERMISSION_DENIED, NOT_FOUND, RESOURCE_EXHAUSTED (quota), INTERNAL / UNAVAILABLE.
"""

from __future__ import annotations

import httpx

from roost.core.commands import CommandResult, FailureReason
from roost.core.errors import AuthError, VendorError
from roost.providers.http import MAX_DETAIL, member, reason_for_status, retry_after, text_of

__all__ = ["QUOTA_RETRY_S", "ApiError", "AuthError", "to_result"]

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


class ApiError(VendorError):
    """A non-2xx answer of a Google API. `status` is the google.rpc status name, or ""."""

    def __init__(self, http_status: int, status: str, message: str) -> None:
        super().__init__(message, http_status)
        self.status, self.message = status, message
        if http_status == 429:
            self.retry_after_s = QUOTA_RETRY_S

    def __str__(self) -> str:
        status = f" {self.status}" if self.status else ""
        return f"HTTP {self.http_status}{status}: {self.message}".rstrip(": ")

    @property
    def reason(self) -> FailureReason:
        reason = _BY_STATUS.get(self.status)
        if reason is None:
            reason = reason_for_status(self.http_status)
        if self.status == "FAILED_PRECONDITION" and "offline" in self.message.lower():
            return FailureReason.OFFLINE
        return reason

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        status, message = _google_status(response)
        error = cls(response.status_code, status, message)
        if error.retry_after_s is not None:  # a quota: Google's Retry-After, when it sends one
            error.retry_after_s = retry_after(response) or error.retry_after_s
        return error


def to_result(error: ApiError) -> CommandResult:
    retry = QUOTA_RETRY_S if error.reason is FailureReason.RATE_LIMITED else None
    return CommandResult.failure(error.reason, str(error), retry)


def _google_status(response: httpx.Response) -> tuple[str, str]:
    error = member(response, "error")
    if not isinstance(error, dict):
        return "", text_of(response)
    status, message = error.get("status"), error.get("message")
    return (
        status if isinstance(status, str) else "",
        message[:MAX_DETAIL] if isinstance(message, str) else "",
    )
