"""The Works with Nest provider: one REST-streaming subscription and the writes of one account.

The stream (`GET` with `Accept: text/event-stream`) sends `put` events carrying the whole
document or a subtree of it; the provider applies each put to the document it holds,
normalizes the result (only the devices and structures whose part of the document changed)
and hands the full picture to the sink (the state layer diffs it).
After every reconnect WWN's first put is the whole document again, so a resync needs no
extra request. WWN answers with a 307 to a per-user host; that host is cached for later
connections and writes and forgotten when it fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Unpack

import httpx
import structlog

from roost.core.commands import Command, CommandResult, FailureReason
from roost.core.errors import (
    AuthError,
    PayloadError,
    ProviderError,
    RateLimited,
    StreamEnded,
    VendorError,
)
from roost.core.model import Change, Device, Home, Structure
from roost.providers.base import ChangeSink
from roost.providers.core import CoreOptions, ProviderCore, counters
from roost.providers.deadlines import bounded
from roost.providers.event_stream import EventStream, SilentStream, open_stream
from roost.providers.health import PayloadHealth
from roost.providers.http import (
    failure_for_status,
    message_of,
    retry_after,
    transport_error,
    writer_headers,
)
from roost.providers.json_delta import DeltaParser
from roost.providers.nest_wwn import WRITE_LIMITS, NestWwnAccount
from roost.providers.nest_wwn.encode import encode
from roost.providers.nest_wwn.normalize import (
    Document,
    Normalizer,
    apply_put,
    camera_events,
    display_scale,
    previous_mode,
    put_edits,
)
from roost.providers.readers import Problems
from roost.providers.registry import ProviderContext
from roost.providers.sse import EventTooLarge, SseEvent

log = structlog.get_logger(__name__)

_MAX_REDIRECTS = 5
COMMAND_ID_HEADER = "X-Roost-Command-Id"  # lets a log or a simulator see a duplicate


# A whole-home put is a few kB per device; anything near this is not a home document.
MAX_EVENT_BYTES = 4 * 1024 * 1024
KEEPALIVE = frozenset({"keep-alive"})  # a sign of life only: it never wakes the reader


# After a put: the document, the home, the changes if only readings changed (else None).
_Update = tuple[Document, Home, list[Change] | None]


class NestWwnProvider(ProviderCore[Structure | Device, tuple[str, dict[str, Any]]]):
    """One Works with Nest account: `run` holds the stream, `execute` performs writes."""

    write_limits = WRITE_LIMITS

    def __init__(
        self,
        settings: NestWwnAccount,
        context: ProviderContext | None = None,
        *,
        max_event_bytes: int = MAX_EVENT_BYTES,
        **core: Unpack[CoreOptions],
    ) -> None:
        super().__init__(settings, context, **core)
        self.stats = counters("connects", "puts", "malformed", "vendor_errors", "watchdog_timeouts")
        self._max_event_bytes = max_event_bytes
        self._api_url = httpx.URL(settings.api_url)
        assert settings.token is not None  # resolved by the settings' validation
        self._auth = {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
        self._keepalive_timeout_s = keepalive = settings.keepalive_timeout_s
        # Set on each request: the client may be shared with other accounts.
        self._timeout = httpx.Timeout(connect=10, read=keepalive, write=10, pool=10)
        self._redirected_base: httpx.URL | None = None
        self._document: Document | None = None
        self._normalize = Normalizer(self.account)
        self._recalled = False  # the stand-ins' last word taken from the restored home
        self._parse = DeltaParser()  # each put is the whole home again: parse what changed

    # --- subscription ----------------------------------------------------------------------

    async def _subscription(self, sink: ChangeSink) -> None:
        """One connection: follow redirects by hand, then read the stream until it ends."""
        if not self._recalled:
            self._recalled = True
            self._normalize.recall(sink.home(self.account))
        url = self._url("/")
        try:
            for _ in range(_MAX_REDIRECTS):
                headers = {**self._auth, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
                async with open_stream(
                    self._client,
                    url,
                    headers,
                    timeouts=self._timeout,
                    silence_s=self._keepalive_timeout_s,
                    max_event_bytes=self._max_event_bytes,
                    skip=KEEPALIVE,
                ) as stream:
                    response = stream.response
                    if response.is_redirect:
                        url = self._follow(response, "/")
                        continue
                    if response.status_code != 200:
                        raise self._refused(response)
                    self.stats.connects += 1
                    log.info("nest_wwn.stream_open", account=self.account, host=url.host)
                    await self._handle_events(stream, sink)
            raise VendorError("too many redirects")
        except EventTooLarge as exc:
            self._skipped("an event", exc)
            raise
        except httpx.RequestError as exc:
            self._redirected_base = None
            if isinstance(exc, httpx.ReadTimeout):  # httpx's read timeout beat the watchdog
                raise self._silent() from None
            raise transport_error(exc) from None

    def _silent(self) -> StreamEnded:
        self.stats.watchdog_timeouts += 1
        return StreamEnded(
            f"no event or keep-alive for {self._keepalive_timeout_s:g} s", silent=True
        )

    def _refused(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        if status == 401:
            return AuthError(f"token rejected (HTTP 401): {message_of(response)}")
        if status == 429:
            return RateLimited("rate limited (HTTP 429)", retry_after(response))
        self._redirected_base = None
        return VendorError(f"HTTP {status}: {message_of(response)}", status)

    async def _handle_events(self, stream: EventStream, sink: ChangeSink) -> None:
        """Handle events until the stream ends, fails, or stays silent too long."""
        first_put = True
        while True:
            try:
                sse = await stream.next()
            except SilentStream:
                self._redirected_base = None
                raise self._silent() from None
            if sse is None:
                raise StreamEnded("stream closed by the server")
            if await self._handle_event(sse, sink, catch_up=first_put):
                first_put = False
            # waits for the next event holding nothing of this one (see forget_edits)
            del sse

    async def _handle_event(self, sse: SseEvent, sink: ChangeSink, *, catch_up: bool) -> bool:
        """One event of the stream; True if it was a put that reached the state."""
        if sse.event == "put":
            update = self._apply_put(sse.data, sink.payload_health(self.account))
            if update is None:
                return False
            await self.supervisor.connected("streaming")
            await self._publish(update, sink, catch_up=catch_up)
            return True
        if sse.event == "auth_revoked":
            raise AuthError("authorization revoked by Nest (auth_revoked)")
        if sse.event == "error":
            self.stats.vendor_errors += 1
            log.warning("nest_wwn.stream_error", account=self.account, data=sse.data[:200])
            raise VendorError(f"stream error: {sse.data[:200]}")
        return False

    def _apply_put(self, data: str, health: PayloadHealth) -> _Update | None:
        """The document and home after one put, and its changes if they are only readings
        of held devices (see `Normalizer.readings`); a malformed or oversized put is counted
        and skipped, an unreadable field only makes its attribute unknown (see readers)."""
        try:
            payload = self._parse.parse(data)
            if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
                raise PayloadError("put without a path")
            if "data" not in payload:
                raise PayloadError("put without data")
            path = payload["path"]
            document = apply_put(self._document, path, payload["data"])
            problems = Problems()
            edits = put_edits(path, self._parse.edits, self._parse.replaced)
            self._parse.forget_edits()
            home = self._normalize(document, problems, edits)
        except ValueError as exc:  # JSONDecodeError, PayloadTooLarge, PayloadError
            self._skipped("a put", exc, health)
            return None
        readings = self._normalize.take_readings()  # only readings changed: the same targets
        self._review(health, problems, home if readings is None else None)
        return document, home, readings

    async def _publish(self, update: _Update, sink: ChangeSink, *, catch_up: bool) -> None:
        """Hold the new document and report it: the full picture (or, for a put that only
        changed readings, those as a patch: the same events, without a diff of the whole
        home), then new camera events."""
        document, home, readings = update
        at = datetime.now(UTC)
        found = camera_events(self._document, document, self.account, at=at, catch_up=catch_up)
        self._document, self.home = document, home
        self.stats.puts += 1
        if readings is None or catch_up:
            await sink.snapshot(self.account, home, at)
        elif readings:
            await sink.patch(self.account, readings, at)
        for event in found:
            await sink.device_event(self.account, event)

    # --- writes ----------------------------------------------------------------------------

    def _encode(self, command: Command, target: Structure | Device) -> tuple[str, dict[str, Any]]:
        return encode(
            command.action,
            target,
            previous_mode=previous_mode(self._document, target.id),
            scale=display_scale(self._document, target.id),
        )

    async def _send(self, write: tuple[str, dict[str, Any]], command: Command) -> CommandResult:
        """PUT the write, following a 307."""
        path, body = write
        return await self._put(path, body, command)

    def _describe(self, write: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        return {"path": write[0]}

    async def _put(self, path: str, body: dict[str, Any], command: Command) -> CommandResult:
        headers = {**self._auth, COMMAND_ID_HEADER: command.id, **writer_headers(command)}
        url = self._url(path)
        for _ in range(_MAX_REDIRECTS):
            try:
                response = await bounded(
                    self._client.put(
                        url,
                        json=body,
                        headers=headers,
                        follow_redirects=False,
                        timeout=self._timeout,
                    )
                )
            except httpx.RequestError:
                self._redirected_base = None
                raise
            if response.is_redirect:
                url = self._follow(response, path)
                continue
            if response.is_success:
                return CommandResult.success()
            if response.status_code >= 500:
                self._redirected_base = None
            return write_failure(response)
        return CommandResult.failure(FailureReason.SERVER_ERROR, "too many redirects")

    # --- redirect host cache ---------------------------------------------------------------

    def _url(self, path: str) -> httpx.URL:
        """`path` (a data location, "/" for the stream) on the cached host, else on api_url."""
        base = self._redirected_base or self._api_url
        return base.copy_with(path=base.path.rstrip("/") + path)

    def _follow(self, response: httpx.Response, path: str) -> httpx.URL:
        """Where a 307 for `path` points; the base it implies is cached for later requests."""
        location = response.url.join(response.headers["Location"])
        prefix = location.path.removesuffix(path) if location.path.endswith(path) else ""
        self._redirected_base = location.copy_with(path=prefix or "/")
        log.info("nest_wwn.redirected", account=self.account, host=location.host)
        return location


def write_failure(response: httpx.Response, *, now: datetime | None = None) -> CommandResult:
    """The failure a non-2xx answer to a PUT means: the shared table, but a 400 whose
    `message` says the device is not online is OFFLINE."""
    message = message_of(response)
    offline = response.status_code == 400 and "not online" in message.lower()
    reason = FailureReason.OFFLINE if offline else None
    return failure_for_status(response, message, reason, now=now)
