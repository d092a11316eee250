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

from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import structlog

from roost.commands import Command, CommandResult, FailureReason
from roost.events import ConnectionState
from roost.model import Device, Home, Structure
from roost.providers.backoff import Backoff
from roost.providers.base import ChangeSink, HttpClientOwner, Rate, WriteLimits
from roost.providers.bounds import parse_json
from roost.providers.health import PayloadHealth
from roost.providers.nest_wwn import errors
from roost.providers.nest_wwn.encode import EncodeError, encode
from roost.providers.nest_wwn.normalize import (
    Document,
    Normalizer,
    PayloadError,
    apply_put,
    camera_events,
    display_scale,
    previous_mode,
)
from roost.providers.readers import Problems
from roost.providers.sse import EventTooLarge, read_sse

log = structlog.get_logger(__name__)

_MAX_REDIRECTS = 5
COMMAND_ID_HEADER = "X-Roost-Command-Id"  # lets a log or a simulator see a duplicate

# PROTOCOLS.md 1.5: writes are limited per device per hour (the numbers are not published)
# and per token; Nest recommends at most one call a minute. A short burst keeps a scene
# ("away: eco everywhere, then back") snappy; the sustained rate is one a minute per device.
WRITE_LIMITS = WriteLimits(per_device=Rate(burst=3, every_s=60.0), per_account=Rate(10, 6.0))


@dataclass
class StreamStats:
    """Counters for the subscription, for metrics and tests."""

    connects: int = 0
    puts: int = 0
    malformed: int = 0
    vendor_errors: int = 0
    watchdog_timeouts: int = 0
    disconnects: int = 0


@dataclass(frozen=True, slots=True)
class _Ended:
    """Why one connection ended, and what to do next."""

    reason: str
    auth_failed: bool = False
    retry_after_s: float | None = None


# A whole-home put is a few kB per device; anything near this is not a home document.
MAX_EVENT_BYTES = 4 * 1024 * 1024


class NestWwnProvider(HttpClientOwner):
    """One Works with Nest account: `run` holds the stream, `execute` performs writes."""

    def __init__(
        self,
        account: str,
        *,
        api_url: str,
        token: str,
        keepalive_timeout_s: float = 75.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        client: httpx.AsyncClient | None = None,
        write_limits: WriteLimits = WRITE_LIMITS,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        self.account = account
        self._max_event_bytes = max_event_bytes
        self.write_limits = write_limits
        self.home: Home | None = None
        self.state: ConnectionState | None = None
        self.stats = StreamStats()
        self._api_url = httpx.URL(api_url)
        self._auth = {"Authorization": f"Bearer {token}"}
        self._keepalive_timeout_s = keepalive_timeout_s
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        # Set on each request: the client may be shared with other accounts.
        self._timeout = httpx.Timeout(connect=10, read=keepalive_timeout_s, write=10, pool=10)
        self._use_client(client, follow_redirects=False)
        self._redirected_base: httpx.URL | None = None
        self._document: Document | None = None
        self._normalize = Normalizer(account)

    def __repr__(self) -> str:  # never show the token
        return f"NestWwnProvider(account={self.account!r}, api_url={str(self._api_url)!r})"

    # --- subscription ----------------------------------------------------------------------

    async def run(self, sink: ChangeSink) -> None:
        """Hold the stream until cancelled; returns only when the token is no longer valid."""
        while True:
            ended = await self._connect(sink)
            if ended.auth_failed:
                log.error("nest_wwn.auth_failed", account=self.account, reason=ended.reason)
                await self._set_state(sink, ConnectionState.AUTH_FAILED, ended.reason)
                return
            self.stats.disconnects += 1
            await self._set_state(sink, ConnectionState.DISCONNECTED, ended.reason)
            delay = ended.retry_after_s
            if delay is None:
                delay = self._backoff.next()
            log.warning(
                "nest_wwn.reconnecting", account=self.account, reason=ended.reason, delay_s=delay
            )
            await anyio.sleep(delay)

    async def _connect(self, sink: ChangeSink) -> _Ended:
        """One connection: follow redirects by hand, then read the stream until it ends."""
        url = self._url("/")
        try:
            for _ in range(_MAX_REDIRECTS):
                headers = {**self._auth, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
                async with self._client.stream(
                    "GET", str(url), headers=headers, follow_redirects=False, timeout=self._timeout
                ) as response:
                    if response.is_redirect:
                        url = self._follow(response, "/")
                        continue
                    if response.status_code != 200:
                        await response.aread()
                        return self._refused(response)
                    self.stats.connects += 1
                    log.info("nest_wwn.stream_open", account=self.account, host=url.host)
                    return await self._read(response, sink)
            return _Ended("too many redirects")
        except httpx.RequestError as exc:
            self._redirected_base = None
            if isinstance(exc, httpx.ReadTimeout):  # httpx's read timeout beat the watchdog
                return self._silent()
            return _Ended(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    def _silent(self) -> _Ended:
        self.stats.watchdog_timeouts += 1
        return _Ended(f"no event or keep-alive for {self._keepalive_timeout_s:g} s")

    def _refused(self, response: httpx.Response) -> _Ended:
        status = response.status_code
        if status == 401:
            return _Ended(f"token rejected (HTTP 401): {errors.vendor_message(response)}", True)
        if status == 429:
            retry = errors.parse_retry_after(response.headers.get("Retry-After"))
            return _Ended("rate limited (HTTP 429)", retry_after_s=retry)
        self._redirected_base = None
        return _Ended(f"HTTP {status}: {errors.vendor_message(response)}")

    async def _read(self, response: httpx.Response, sink: ChangeSink) -> _Ended:
        """Handle events until the stream ends, fails, or stays silent too long."""
        try:
            return await self._handle_events(response, sink)
        except EventTooLarge as exc:
            self.stats.malformed += 1
            log.error("nest_wwn.event_too_large", account=self.account, error=str(exc))
            return _Ended(f"{exc}; reconnecting")

    async def _handle_events(self, response: httpx.Response, sink: ChangeSink) -> _Ended:
        first_put = True
        async with aclosing(read_sse(response, self._max_event_bytes)) as events:
            while True:
                with anyio.move_on_after(self._keepalive_timeout_s) as watchdog:
                    sse = await anext(events, None)
                if watchdog.cancelled_caught:
                    self._redirected_base = None
                    return self._silent()
                if sse is None:
                    return _Ended("stream closed by the server")
                if sse.event == "put":
                    update = self._apply_put(sse.data, sink.payload_health(self.account))
                    if update is not None:
                        self._backoff.reset()
                        await self._set_state(sink, ConnectionState.CONNECTED, "streaming")
                        await self._publish(update, sink, catch_up=first_put)
                        first_put = False
                elif sse.event == "auth_revoked":
                    return _Ended("authorization revoked by Nest (auth_revoked)", True)
                elif sse.event == "error":
                    self.stats.vendor_errors += 1
                    log.warning("nest_wwn.stream_error", account=self.account, data=sse.data[:200])
                    return _Ended(f"stream error: {sse.data[:200]}")

    def _apply_put(self, data: str, health: PayloadHealth) -> tuple[Document, Home] | None:
        """The document and home after one put; a malformed or oversized put is counted and
        skipped, an unreadable field only makes its attribute unknown (see readers)."""
        try:
            payload = parse_json(data)
            if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
                raise PayloadError("put without a path")
            if "data" not in payload:
                raise PayloadError("put without data")
            document = apply_put(self._document, payload["path"], payload["data"])
            problems = Problems()
            home = self._normalize(document, problems)
        except (ValueError, PayloadError) as exc:  # JSONDecodeError, PayloadTooLarge
            self.stats.malformed += 1
            log.warning("nest_wwn.malformed_put", account=self.account, error=str(exc)[:200])
            health.reject(str(exc)[:200])
            return None
        health.review(problems, keep=home.devices.keys() | home.structures.keys())
        return document, home

    async def _publish(
        self, update: tuple[Document, Home], sink: ChangeSink, *, catch_up: bool
    ) -> None:
        """Hold the new document and report it: the full picture, then new camera events."""
        document, home = update
        at = datetime.now(UTC)
        found = camera_events(self._document, document, self.account, at=at, catch_up=catch_up)
        self._document, self.home = document, home
        self.stats.puts += 1
        await sink.snapshot(self.account, home, at)
        for event in found:
            await sink.device_event(self.account, event)

    async def _set_state(self, sink: ChangeSink, state: ConnectionState, detail: str) -> None:
        if state is self.state:
            return
        self.state = state
        log.info("nest_wwn.status", account=self.account, state=str(state), detail=detail)
        await sink.status(self.account, state, detail)

    # --- writes ----------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResult:
        """One write: encode the action, PUT it, follow a 307, map the answer."""
        target = self._find(command.target)
        if target is None:
            return CommandResult.failure(
                FailureReason.NOT_FOUND, f"unknown target {command.target}"
            )
        try:
            path, body = encode(
                command.action,
                target,
                previous_mode=previous_mode(self._document, target.id),
                scale=display_scale(self._document, target.id),
            )
        except EncodeError as exc:
            return CommandResult.failure(FailureReason.INVALID, str(exc))
        result = await self._put(path, body, command.id)
        log.info(
            "nest_wwn.write",
            account=self.account,
            command=command.id,
            path=path,
            ok=result.ok,
            reason=str(result.reason) if result.reason else None,
            detail=result.detail,
        )
        return result

    def _find(self, target_id: str) -> Structure | Device | None:
        home = self.home
        if home is None:
            return None
        return home.devices.get(target_id) or home.structures.get(target_id)

    async def _put(self, path: str, body: dict[str, Any], command_id: str) -> CommandResult:
        headers = {**self._auth, COMMAND_ID_HEADER: command_id}
        url = self._url(path)
        for _ in range(_MAX_REDIRECTS):
            try:
                response = await self._client.put(
                    url, json=body, headers=headers, follow_redirects=False, timeout=self._timeout
                )
            except httpx.RequestError as exc:
                self._redirected_base = None
                return errors.from_transport_error(exc)
            if response.is_redirect:
                url = self._follow(response, path)
                continue
            if response.is_success:
                return CommandResult.success()
            if response.status_code >= 500:
                self._redirected_base = None
            return errors.from_response(response)
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
