"""The Nest web provider: one account's session, its subscribe loop and its puts.

`run` logs in (or resumes a stored session token), fetches every bucket with `app_launch`,
reports the normalized home, then long-polls `{transport}/v5/subscribe` with the revision
of every bucket it holds. A reply carries the buckets whose revision changed; they are
merged and the whole home is reported again (the state layer diffs it). An empty reply is
the server's hold running out, and the loop asks again at once.

Nothing is lost across a failure because the revisions are held: after any interruption
(a dropped long poll, 5xx, 429, a malformed reply, replies that keep answering revisions
already held) the provider reports the account
disconnected, backs off, and starts over with a full `app_launch`, whose differences the
state layer reports as catch-up. A bucket that the held ones refer to but that is not held
(a new device in a structure's `swarm`) also triggers a full refresh. A 401/403 drops the
session and logs in again at once (Google login or password) or reports `auth_failed`
(token only, or the Google cookies expired).

Writes are `POST {transport}/v5/put` with `MERGE` objects; a 401/403 there logs in again
and retries once.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, Unpack

import anyio
import httpx
import structlog

from roost.core.commands import Command, CommandResult, FailureReason
from roost.core.errors import PayloadError, ProviderError, VendorError
from roost.core.model import Device, Structure
from roost.providers.base import ChangeSink, TokenSet
from roost.providers.bounds import PayloadTooLarge, parse_json
from roost.providers.core import CoreOptions, ProviderCore, counters
from roost.providers.http import (
    failure_for_status,
    message_of,
    refused,
    transport_error,
    transport_failure,
)
from roost.providers.nest_web import WRITE_LIMITS, NestWebAccount
from roost.providers.nest_web.buckets import Bucket, BucketSet, parse_objects
from roost.providers.nest_web.encode import encode
from roost.providers.nest_web.normalize import ScheduleEntry, base_mode, normalize, schedule
from roost.providers.nest_web.session import (
    GoogleLogin,
    LoginMethod,
    LoginRefused,
    PasswordLogin,
    Session,
    SessionExpired,
    SessionUnavailable,
    login,
    resume,
)
from roost.providers.readers import Problems
from roost.providers.registry import ProviderContext

log = structlog.get_logger(__name__)

# What app_launch is asked for: every bucket type the normalizer reads, plus schedules.
BUCKET_TYPES = ("structure", "where", "device", "shared", "track", "topaz", "schedule", "user")
REQUEST_TIMEOUT_S = 30.0
HTTP_TIMEOUT = httpx.Timeout(REQUEST_TIMEOUT_S)
STALE_REPLIES_LIMIT = 3  # replies in a row with nothing new: resync instead of spinning
RENEW_AFTER = timedelta(days=20)  # homebridge-nest logs in again every 20 days
RENEW_MARGIN = timedelta(days=1)  # ... or this long before the session says it expires
SUBSCRIBE_INTERVAL_S = 0.1  # between subscribes at least (homebridge waits 0.1 s too)
QUICK_REPLY_S = 0.15  # an empty reply sooner than this did not hold the poll open
QUICK_EMPTY_BACKOFF_S = 1.0  # after quick empty replies: 1, 2, 4 … s between subscribes
QUICK_EMPTY_BACKOFF_MAX_S = 30.0
JWT_RENEW_MARGIN = timedelta(minutes=5)  # a Google login's JWT lasts an hour (homebridge: 55 min)


Writes = list[tuple[str, dict[str, Any]]]


class NestWebProvider(ProviderCore[Structure | Device, Writes]):
    """One Nest web account: `run` holds the subscribe loop, `execute` performs puts.

    Give `email` and `password` (the session is renewed by logging in again), or an
    `access_token` of an existing session (it cannot be renewed: when it is refused the
    account reports `auth_failed`). A session token kept in `tokens` is resumed first,
    so a restart does not log in again.
    """

    http_timeout = HTTP_TIMEOUT
    write_limits = WRITE_LIMITS

    def __init__(
        self,
        settings: NestWebAccount,
        context: ProviderContext | None = None,
        **core: Unpack[CoreOptions],
    ) -> None:
        super().__init__(settings, context, **core)
        self.schedules: dict[str, tuple[ScheduleEntry, ...]] = {}  # thermostat → set-points
        # updates: replies that changed at least one bucket
        self.stats = counters(
            *("logins", "resumes", "refreshes", "subscribes", "updates", "empty_replies"),
            *("client_timeouts", "malformed"),
        )
        self._api_url = settings.api_url.rstrip("/")
        self._method = _login_method(settings)
        token = settings.access_token
        self._access_token = token.get_secret_value() if token is not None else None
        self._subscribe_timeout_s = settings.subscribe_timeout_s
        self._session: Session | None = None
        self._session_since = 0.0  # clock.monotonic() when the session was opened
        self._session_lock = anyio.Lock()
        self._refused_tokens: set[str] = set()
        self._refusals_in_a_row = 0
        self._buckets = BucketSet()
        self._missing_at_refresh: frozenset[str] = frozenset()
        self._stale_replies = 0
        self._subscribe_began = float("-inf")
        self._quick_empties = 0  # empty replies in a row that came back at once

    # --- subscription ----------------------------------------------------------------------

    async def _subscription(self, sink: ChangeSink) -> None:
        """A full refresh, then subscribe after subscribe until something breaks."""
        await self._refresh(await self._open_session(), sink)
        while True:
            session = await self._open_session()
            changed = await self._subscribe(session)
            if changed:
                self.stats.updates += 1
                await self._publish(sink)
            missing = self._buckets.missing()
            if missing and missing != self._missing_at_refresh:
                log.info("nest_web.new_buckets", account=self.account, keys=sorted(missing))
                await self._refresh(session, sink)

    async def _refresh(self, session: Session, sink: ChangeSink) -> None:
        """Fetch every bucket (`app_launch`) and report the whole home."""
        url = f"{self._api_url}/api/0.1/user/{session.user_id}/app_launch"
        body = {"known_bucket_types": list(BUCKET_TYPES), "known_bucket_versions": []}
        reply = await self._post(session, url, body, REQUEST_TIMEOUT_S)
        buckets = self._parse(reply, "updated_buckets")
        self._follow_transport(session, reply)
        self._buckets.replace_all(buckets)
        self._missing_at_refresh = self._buckets.missing()
        self.stats.refreshes += 1
        self._refusals_in_a_row = 0
        await self.supervisor.connected("subscribed")
        await self._publish(sink)

    async def _paced(self) -> None:
        """Wait before the next subscribe: never sooner than SUBSCRIBE_INTERVAL_S after the
        last one began, and longer while replies come back at once with nothing (a server
        whose hold is broken would otherwise be polled in a tight loop)."""
        since = self._clock.monotonic() - self._subscribe_began
        quick_empty = self._quick_empties
        wait = (
            SUBSCRIBE_INTERVAL_S
            if quick_empty == 0
            else min(QUICK_EMPTY_BACKOFF_S * 2 ** (quick_empty - 1), QUICK_EMPTY_BACKOFF_MAX_S)
        )
        if wait > since:
            await self._clock.sleep(wait - since)
        self._subscribe_began = self._clock.monotonic()

    async def _subscribe(self, session: Session) -> list[str]:
        """One long poll: the keys of the buckets that changed (none when it timed out)."""
        await self._paced()
        self.stats.subscribes += 1
        url = f"{session.transport_url}/v5/subscribe"
        body = {"objects": self._buckets.subscription()}
        try:
            reply = await self._post(session, url, body, self._subscribe_timeout_s)
        except ProviderError as exc:
            if isinstance(exc.__cause__, httpx.ReadTimeout):
                self.stats.client_timeouts += 1  # the server held longer than we wait
                return []
            raise
        # some replies carry their changes as `updated_buckets` (homebridge reads both)
        objects = self._parse(reply, "objects") + self._parse(reply, "updated_buckets")
        changed = self._buckets.apply(objects)
        if not changed:
            self.stats.empty_replies += 1
        held_s = self._clock.monotonic() - self._subscribe_began
        quick = not changed and held_s < QUICK_REPLY_S
        self._quick_empties = self._quick_empties + 1 if quick else 0
        self._stale_replies = self._stale_replies + 1 if objects and not changed else 0
        if self._stale_replies >= STALE_REPLIES_LIMIT:
            # The service and roost disagree about revisions: stop asking in a tight loop.
            self._stale_replies = 0
            raise VendorError("the subscription keeps answering revisions already held")
        return changed

    async def _post(self, session: Session, url: str, body: Any, timeout_s: float) -> Any:
        """POST JSON with the session's headers; the JSON reply, or a `ProviderError`."""
        try:
            response = await self._client.post(
                url, json=body, headers=session.headers(), timeout=timeout_s
            )
        except httpx.RequestError as exc:
            raise transport_error(exc) from exc
        status = response.status_code
        if status in (401, 403):
            self._forget(session)
            self._refusals_in_a_row += 1
            expired = VendorError(f"session refused (HTTP {status})", status)
            if self._refusals_in_a_row == 1:
                expired.retry_after_s = 0.0  # a session that expired: log in again at once
            raise expired
        if status != 200:
            raise refused(response, message_of(response))  # 429: RateLimited
        try:
            return parse_json(response.content)
        except PayloadTooLarge as exc:
            raise self._malformed(PayloadError(str(exc))) from None
        except ValueError:
            raise self._malformed(PayloadError("the reply is not JSON")) from None

    def _parse(self, reply: Any, key: str) -> list[Bucket]:
        try:
            return parse_objects(reply, key, lambda exc: self._skipped("a bucket", exc))
        except PayloadError as exc:
            raise self._malformed(exc) from None

    def _malformed(self, exc: PayloadError) -> PayloadError:
        self._skipped("a reply", exc)
        return PayloadError(f"malformed reply: {exc}")

    def _follow_transport(self, session: Session, reply: Any) -> None:
        """app_launch names the transport URL too; a moved transport is followed."""
        service = reply.get("service_urls") if isinstance(reply, dict) else None
        urls = service.get("urls") if isinstance(service, dict) else None
        transport = urls.get("transport_url") if isinstance(urls, dict) else None
        if not isinstance(transport, str) or self._session is not session:
            return
        if transport.rstrip("/") != session.transport_url:
            log.info("nest_web.transport_moved", account=self.account, url=transport)
            self._session = dataclasses.replace(session, transport_url=transport.rstrip("/"))

    async def _publish(self, sink: ChangeSink) -> None:
        at = self._clock.now()
        buckets = self._buckets.values()
        health = sink.payload_health(self.account)
        try:
            home, problems = normalize(buckets, self.account, now=at, previous=self.home)
        except PayloadTooLarge as exc:
            self._skipped("the buckets", exc, health)
            return
        self.schedules = self._schedules(buckets, problems)
        self._review(health, problems, home)
        self.home = home
        await sink.snapshot(self.account, home, at)

    def _schedules(
        self, buckets: dict[str, Any], problems: Problems
    ) -> dict[str, tuple[ScheduleEntry, ...]]:
        """Every thermostat's schedule; an unreadable one keeps its previous reading."""
        found: dict[str, tuple[ScheduleEntry, ...]] = {}
        for key, value in buckets.items():
            kind, _, serial = key.partition(".")
            if kind != "schedule":
                continue
            try:
                found[serial] = schedule(value, serial)
            except PayloadError as exc:
                problems.note(serial, "schedule.", "unreadable", str(exc))
                if serial in self.schedules:
                    found[serial] = self.schedules[serial]
        return found

    # --- session ---------------------------------------------------------------------------

    async def _open_session(self) -> Session:
        """The session to use, opened or renewed if needed; `SessionUnavailable` if none
        can be had now, `LoginRefused` if none can be had at all."""
        async with self._session_lock:
            current = self._session
            if current is not None and not self._renewal_due(current):
                return current
            if current is not None:  # due for renewal: keep it if a login fails for now
                try:
                    return await self._login()
                except SessionUnavailable as exc:
                    log.warning("nest_web.renewal_failed", account=self.account, reason=str(exc))
                    return current
            for token in await self._resumable_tokens():
                try:
                    return self._use(await resume(self._client, self._api_url, token), "resume")
                except SessionExpired:
                    self._refused_tokens.add(token)
            if self._method is None:
                raise LoginRefused("the session access token was refused; set a new one")
            return await self._login()

    async def _resumable_tokens(self) -> list[str]:
        stored = await self.context.tokens.load(self.account)
        candidates = [stored.access_token if stored else None, self._access_token]
        return [t for t in dict.fromkeys(candidates) if t and t not in self._refused_tokens]

    async def _login(self) -> Session:
        assert self._method is not None
        session = self._use(await login(self._client, self._api_url, self._method), "login")
        tokens = TokenSet(session.token, expires_at=session.expires_at)
        await self.context.tokens.save(self.account, tokens)
        return session

    def _use(self, session: Session, how: str) -> Session:
        if how == "login":
            self.stats.logins += 1
        else:
            self.stats.resumes += 1
        log.info("nest_web.session", account=self.account, how=how, user=session.user_id)
        self._session, self._session_since = session, self._clock.monotonic()
        return session

    def _renewal_due(self, session: Session) -> bool:
        if self._method is None:
            return False
        margin = JWT_RENEW_MARGIN if isinstance(self._method, GoogleLogin) else RENEW_MARGIN
        age_s = self._clock.monotonic() - self._session_since
        if age_s >= RENEW_AFTER.total_seconds():
            return True
        return session.expires_at is not None and self._clock.now() >= (session.expires_at - margin)

    def _forget(self, session: Session) -> None:
        """The service refused this session: never use its token again."""
        self._refused_tokens.add(session.token)
        if self._session is not None and self._session.token == session.token:
            self._session = None

    # --- writes ----------------------------------------------------------------------------

    def _encode(self, command: Command, target: Structure | Device) -> Writes:
        base = base_mode(self._buckets.values(), target.id)
        return encode(command.action, target, base_mode=base, now=self._clock.now())

    async def _send(self, write: Writes, command: Command) -> CommandResult:
        """Post the MERGEs; log in again and retry once on 401/403."""
        return await self._put(
            {"objects": [{"object_key": k, "op": "MERGE", "value": v} for k, v in write]}
        )

    def _describe(self, write: Writes) -> dict[str, Any]:
        return {"keys": [key for key, _ in write]}

    async def _put(self, body: dict[str, Any]) -> CommandResult:
        for attempt in range(2):
            try:
                session = await self._open_session()
            except LoginRefused as exc:
                return CommandResult.failure(FailureReason.UNAUTHORIZED, str(exc))
            except SessionUnavailable as exc:
                return CommandResult.failure(FailureReason.NETWORK, str(exc), exc.retry_after_s)
            try:
                response = await self._client.post(
                    f"{session.transport_url}/v5/put", json=body, headers=session.headers()
                )
            except httpx.RequestError as exc:
                return transport_failure(exc)
            if response.status_code in (401, 403) and attempt == 0:
                self._forget(session)
                continue
            if response.is_success:
                return CommandResult.success()
            return failure_for_status(response, message_of(response))
        return CommandResult.failure(FailureReason.UNAUTHORIZED, "session refused twice")


def _login_method(settings: NestWebAccount) -> LoginMethod | None:
    """How the account logs in again: Google, a password, or not at all (a session token)."""
    if settings.issue_token is not None and settings.cookies is not None:
        issue_token, cookies = settings.issue_token, settings.cookies
        api_key, proxy = settings.google_api_key or "", settings.auth_proxy_url
        return GoogleLogin(
            issue_token.get_secret_value(), cookies.get_secret_value(), api_key, proxy
        )
    password = settings.password.get_secret_value() if settings.password is not None else ""
    return PasswordLogin(settings.email, password) if settings.email and password else None
