"""Nest web HTTP errors → typed `CommandResult` failures.

No public source shows the service's error bodies, so only the status is relied on (the
shared table, providers/http.py); a short piece of the body goes into the detail for a
person to read. 401/403 mean the session is gone (the provider logs in again before it
gives up); 409 means a conditional put met a newer bucket revision.
"""

from __future__ import annotations

import httpx

from roost.commands import CommandResult
from roost.providers.http import failure_for_status, message_of, transport_failure

from_transport_error = transport_failure


def from_response(response: httpx.Response) -> CommandResult:
    """The failure a non-2xx answer to a put means."""
    return failure_for_status(response, detail(response))


def detail(response: httpx.Response) -> str:
    """The body's `message` (or `error`) if it is a JSON object with one, else its text."""
    return message_of(response)
