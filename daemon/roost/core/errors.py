"""roost's exception tree. Every error roost raises on purpose derives from `RoostError`:

    RoostError
    └── ProviderError        a vendor call or subscription failed; `detail` says why
        ├── AuthError        the credentials were refused: a person must act (no retry)
        ├── RateLimited      the vendor asked for a pause; `retry_after_s` if it said how long
        ├── PayloadError     an answer roost cannot read (not JSON, wrong shape, too large)
        ├── EncodeError      a command the vendor cannot express (nothing was sent)
        ├── TransportError   no HTTP answer: a network failure, or `timeout`
        ├── VendorError      a non-2xx answer that is none of the above; `http_status`
        └── StreamEnded      the subscription ended on its own: `silent` (no event or
                             keep-alive in time) or closed by the server

A provider's subscription raises these and the supervisor (providers/supervisor.py) turns
each into a status and a delay; a write maps them to a `CommandResult` failure
(providers/http.py). Vendors subclass them to carry vendor details (an error code, a
status name) but never add a branch the supervisor has to know about.
"""

from __future__ import annotations


class RoostError(Exception):
    """The root of every error roost raises on purpose."""


class ProviderError(RoostError):
    # When to try again, if the vendor (or the provider) knows better than the back-off.
    retry_after_s: float | None = None

    @property
    def detail(self) -> str:
        return str(self) or type(self).__name__


class AuthError(ProviderError):
    """The vendor refused the credentials (revoked grant, refused password): no retry helps."""


class RateLimited(ProviderError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PayloadError(ProviderError, ValueError):
    """An answer roost cannot read."""


class EncodeError(ProviderError, ValueError):
    """A command this vendor cannot express; nothing was sent."""


class TransportError(ProviderError):
    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class VendorError(ProviderError):
    """A non-2xx answer; `http_status` is its HTTP status."""

    def __init__(self, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status


class StreamEnded(ProviderError):
    def __init__(self, message: str, *, silent: bool = False) -> None:
        super().__init__(message)
        self.silent = silent
