"""Works with Nest HTTP errors → typed `CommandResult` failures.

WWN error bodies are `{"error", "type", "message", "instance", "details"?}`; the
`message` is what a person should read. The table is the shared one (providers/http.py);
WWN's own case is a 400 that says the device is not online.
"""

from __future__ import annotations

from datetime import datetime

import httpx

from roost.commands import CommandResult, FailureReason
from roost.providers.http import (
    failure_for_status,
    message_of,
    parse_retry_after,
    retry_after,
    transport_failure,
)

__all__ = ["from_response", "from_transport_error", "parse_retry_after", "retry_after"]

from_transport_error = transport_failure


def from_response(response: httpx.Response, *, now: datetime | None = None) -> CommandResult:
    """The failure a non-2xx WWN response means."""
    message = vendor_message(response)
    offline = response.status_code == 400 and "not online" in message.lower()
    result = failure_for_status(response, message, FailureReason.OFFLINE if offline else None)
    if now is not None and result.reason is FailureReason.RATE_LIMITED:
        return CommandResult.failure(result.reason, result.detail, retry_after(response, now=now))
    return result


def vendor_message(response: httpx.Response) -> str:
    """The WWN `message` (or `error`) of an error body, else a short piece of the text."""
    return message_of(response)
