"""The Netatmo provider: an adaptive poll that behaves like a stream, and the writes.

Netatmo has no stream. `run` reads the topology (`homesdata`) once, then polls: each round
reads every home's `homestatus` and, for homes with Security modules, `getevents`. The
normalized picture goes to the sink as a snapshot (the state layer diffs it into events),
then the timeline's new events as alarm patches and camera events, each exactly once.

The interval adapts: `fast_poll_s` for `fast_window_s` after a write, a webhook or a
change, `slow_poll_s` when idle. A signed webhook or a write wakes the poll at once.
Every request of the account (polls, event reads, writes) takes a slot in one
`RequestBudget`, so the account stays inside Netatmo's per-user limits whatever happens;
polls leave a reserve so a write never waits behind them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Unpack

import anyio
import httpx
import structlog

from roost.core.commands import Command, CommandResult, FailureReason
from roost.core.errors import AuthError, RateLimited
from roost.core.model import Change, Device, Structure
from roost.providers.base import ChangeSink
from roost.providers.bounds import PayloadTooLarge
from roost.providers.core import CoreOptions, ProviderCore, counters
from roost.providers.netatmo import WRITE_LIMITS, NetatmoAccount, errors
from roost.providers.netatmo.api import NetatmoApi
from roost.providers.netatmo.budget import RequestBudget
from roost.providers.netatmo.encode import Write, encode
from roost.providers.netatmo.errors import ApiError
from roost.providers.netatmo.normalize import (
    SECURITY_MODULES,
    HomeReading,
    PayloadError,
    normalize,
    person_ids,
)
from roost.providers.netatmo.timeline import AlarmChange, Timeline, events_of, interpret
from roost.providers.netatmo.webhook import WebhookReceiver
from roost.providers.readers import Problems
from roost.providers.registry import ProviderContext

log = structlog.get_logger(__name__)

HTTP_TIMEOUT = httpx.Timeout(20.0)
DEFAULT_MANUAL_MINUTES = 180  # when the home does not say (therm_setpoint_default_duration)
RATE_LIMITED_PAUSE_S = 60.0
WEBHOOK_RETRY_S = 600.0  # a refused webhook registration is tried again this often
MIN_POLL_GAP_S = 0.25  # even when woken, polls are at least this far apart


class NetatmoProvider(ProviderCore[Structure | Device, Write]):
    """One Netatmo account: `run` holds the adaptive poll, `execute` performs writes."""

    http_timeout = HTTP_TIMEOUT
    write_limits = WRITE_LIMITS

    def __init__(
        self,
        settings: NetatmoAccount,
        context: ProviderContext | None = None,
        *,
        budget: RequestBudget | None = None,
        rate_limited_pause_s: float = RATE_LIMITED_PAUSE_S,
        **core: Unpack[CoreOptions],
    ) -> None:
        super().__init__(settings, context, **core)
        self.settings = settings
        self.stats = counters(
            "polls", "failures", "malformed", "rate_limited", "events", "webhooks"
        )
        self._rate_limited_pause_s = rate_limited_pause_s
        self.budget = budget or RequestBudget(self._clock)
        self.keeper = self._keeper(settings, f"{settings.api_url.rstrip('/')}/oauth2/token")
        self.api = NetatmoApi(settings.api_url, self.keeper, self.budget, self._client)
        self.webhooks = WebhookReceiver(settings.oauth_secrets()[0], self._on_webhook)
        self._topology: dict[str, Mapping[str, Any]] | None = None
        self._readings: dict[str, HomeReading] = {}
        self._timelines: dict[str, Timeline] = {}
        self._no_events: set[str] = set()
        self._webhook_registered = False
        self._webhook_retry_at = float("-inf")
        self.webhook_problem: str | None = None  # why the webhook is not registered, if so
        self._fast_until = -1.0
        self._last_poll = -MIN_POLL_GAP_S
        self._wake = anyio.Event()

    # --- subscription ----------------------------------------------------------------------

    async def run(self, sink: ChangeSink) -> None:
        """Poll until cancelled; returns only when the authorization is gone."""
        async with anyio.create_task_group() as tg:
            listen = self.settings.webhook_address()
            if listen is not None:
                await tg.start(self.webhooks.serve, *listen)
            await super().run(sink)
            tg.cancel_scope.cancel()

    async def _subscription(self, sink: ChangeSink) -> None:
        """Poll round after round until one fails."""
        while True:
            try:
                await self._round(sink)
            except ApiError as exc:
                raise self._failed(exc) from exc
            except (PayloadError, PayloadTooLarge) as exc:
                self._skipped("an answer", exc, sink.payload_health(self.account))
                if isinstance(exc, PayloadTooLarge):
                    raise PayloadError(str(exc)) from exc
                raise
            await self._register_webhook()
            if self.webhook_problem is not None:
                await self.supervisor.degraded(self.webhook_problem)
            else:
                await self.supervisor.connected("polling")
            await self._sleep_or_wake(self._interval())

    def _failed(self, exc: ApiError) -> Exception:
        self.stats.failures += 1
        if exc.code == errors.BAD_SCOPE:
            return AuthError(f"the app lacks a scope: {exc}")
        if exc.rate_limited:
            self.stats.rate_limited += 1
            return RateLimited(str(exc), max(self._rate_limited_pause_s, exc.retry_after_s or 0.0))
        if exc.code == errors.INVALID_ARGS and self._topology is not None:
            self._topology = None  # a home or module may have gone: read the topology again
        return exc

    async def _round(self, sink: ChangeSink) -> None:
        """One poll: every home's status and events → a snapshot, then the news."""
        self._last_poll = self._clock.monotonic()
        if self._topology is None:
            await self._read_topology()
        assert self._topology is not None
        news: list[tuple[Timeline, Mapping[str, Any]]] = []
        for home_id, data in self._topology.items():
            status = await self.api.read("homestatus", {"home_id": home_id})
            home_status = status.get("home", {})
            reading = HomeReading(data, home_status, errors.module_errors(status))
            if self._unknown_ids(reading):
                self._topology = None  # new rooms or modules: next round reads the topology
            self._readings[home_id] = reading
            if _has_security(data) and home_id not in self._no_events:
                news.extend(await self._events(home_id))
        await self._publish(sink, news)
        self.stats.polls += 1

    async def _events(self, home_id: str) -> list[tuple[Timeline, Mapping[str, Any]]]:
        """The home's unreported events. Without a Security scope the home has none: its
        alarms and cameras then show only what homestatus says (logged once)."""
        timeline = await self._timeline(home_id)
        try:
            body = await self.api.read("getevents", {"home_id": home_id, "size": "50"})
        except ApiError as exc:
            if exc.code != errors.BAD_SCOPE:
                raise
            self._no_events.add(home_id)
            log.error("netatmo.no_event_scope", account=self.account, home=home_id)
            return []
        return [(timeline, entry) for entry in await timeline.news(events_of(body))]

    async def _read_topology(self) -> None:
        home_id = self.settings.home_id
        body = await self.api.read("homesdata", {"home_id": home_id} if home_id else {})
        listed = body.get("homes")
        homes = [
            h
            for h in (listed if isinstance(listed, list) else [])
            if isinstance(h, Mapping) and isinstance(h.get("id"), str)
        ]
        if home_id is not None:
            homes = [h for h in homes if h["id"] == home_id]
            if not homes:
                raise ApiError(404, errors.NOT_FOUND, f"no home {home_id!r} in homesdata")
        self._topology = {h["id"]: h for h in homes}
        self._readings = {k: v for k, v in self._readings.items() if k in self._topology}
        log.info("netatmo.topology", account=self.account, homes=len(homes))

    async def _register_webhook(self) -> None:
        """Register the webhook URL, never at the poll's expense: a refusal (code 21 for a
        URL Netatmo cannot reach, a conflict, an outage) is reported as degraded and
        retried every WEBHOOK_RETRY_S, while polling goes on."""
        url = self.settings.webhook_url
        if url is None or self._webhook_registered:
            return
        if self._clock.monotonic() < self._webhook_retry_at:
            return
        try:
            await self._post_webhook(url)
        except ApiError as exc:
            if exc.rate_limited or exc.token_rejected:
                raise
            self._webhook_retry_at = self._clock.monotonic() + WEBHOOK_RETRY_S
            self.webhook_problem = f"webhook registration refused ({exc}); polling only"
            log.warning("netatmo.webhook_refused", account=self.account, error=str(exc))
            return
        self._webhook_registered, self.webhook_problem = True, None

    async def _post_webhook(self, url: str) -> None:
        """webhooks/v1 as current pyatmo does (a conflict: drop the incumbent, once), else
        the older api/addwebhook where the newer endpoint is not served."""
        try:
            try:
                await self.api.webhooks_v1("POST", url)
            except ApiError as exc:
                if exc.status != 409:
                    raise
                await self.api.webhooks_v1("DELETE")
                await self.api.webhooks_v1("POST", url)
        except ApiError as exc:
            if exc.status not in (404, 405):
                raise
            await self.api.write("addwebhook", form={"url": url})

    def _unknown_ids(self, reading: HomeReading) -> bool:
        known = _module_ids(reading.data)
        return bool(_module_ids(reading.status) - known)

    async def _timeline(self, home_id: str) -> Timeline:
        timeline = self._timelines.get(home_id)
        if timeline is None:
            timeline = self._timelines[home_id] = Timeline(
                self.context.memory, self.account, home_id
            )
        await timeline.load()
        return timeline

    async def _publish(
        self, sink: ChangeSink, news: list[tuple[Timeline, Mapping[str, Any]]]
    ) -> None:
        """The round's picture and news. Alarm news goes first (a guard deciding on a change
        in the same round must already know about the alarm), except on the very first
        round, whose snapshot is the baseline the news applies to."""
        now = self._clock.now()
        if self.home is None:
            await self._snapshot(sink, now)
        for timeline, entry in news:  # reported first, remembered after: never lost
            meaning = interpret(entry)
            if isinstance(meaning, AlarmChange):
                change = Change(meaning.module, meaning.attribute, meaning.state)
                await sink.patch(self.account, [change], now)
            elif meaning is not None:
                event = timeline.device_event(entry, meaning, self.account, now)
                await sink.device_event(self.account, event)
            await timeline.reported(entry)
            if meaning is not None:
                self.stats.events += 1
            self._hurry()
        await self._snapshot(sink, now)

    async def _snapshot(self, sink: ChangeSink, now: datetime) -> None:
        alarms = {m: s for t in self._timelines.values() for m, s in t.alarms.items()}
        problems = Problems()
        home = normalize(list(self._readings.values()), self.account, alarms, problems)
        self._review(sink.payload_health(self.account), problems, home)
        if home != self.home:
            self.home = home
            await sink.snapshot(self.account, home, now)

    # --- pacing ----------------------------------------------------------------------------

    def _interval(self) -> float:
        fast = self._clock.monotonic() < self._fast_until
        return self.settings.fast_poll_s if fast else self.settings.slow_poll_s

    def _hurry(self) -> None:
        """Something happened: poll fast for a while."""
        self._fast_until = self._clock.monotonic() + self.settings.fast_window_s

    def wake(self) -> None:
        """Poll now (after the minimum gap), and fast for a while."""
        self._hurry()
        self._wake.set()

    def _on_webhook(self, payload: Mapping[str, Any]) -> None:
        self.stats.webhooks += 1
        if payload.get("push_type") != "webhook_activation":
            self.wake()

    async def _sleep_or_wake(self, delay: float) -> None:
        async with anyio.create_task_group() as tg:

            async def sleep() -> None:
                await self._clock.sleep(delay)
                tg.cancel_scope.cancel()

            async def woken() -> None:
                await self._wake.wait()
                gap = self._last_poll + MIN_POLL_GAP_S - self._clock.monotonic()
                if gap > 0:
                    await self._clock.sleep(gap)
                tg.cancel_scope.cancel()

            tg.start_soon(sleep)
            tg.start_soon(woken)
        self._wake = anyio.Event()

    # --- writes ----------------------------------------------------------------------------

    def _describe(self, write: Write) -> dict[str, Any]:
        return {"endpoint": write.endpoint}

    def _encode(self, command: Command, target: Structure | Device) -> Write:
        home_id = target.id if isinstance(target, Structure) else target.structure_id
        reading = self._readings.get(home_id)
        minutes = DEFAULT_MANUAL_MINUTES
        persons: list[str] = []
        if reading is not None:
            persons = person_ids(reading.status)
            default = reading.data.get("therm_setpoint_default_duration")
            if isinstance(default, int) and not isinstance(default, bool) and default > 0:
                minutes = default
        return encode(
            command.action,
            target,
            now=self._clock.now(),
            manual_duration=timedelta(minutes=minutes),
            eco_mode=self.settings.eco_mode,
            persons=persons,
        )

    async def _send(self, write: Write, command: Command) -> CommandResult:
        """Wait for a budget slot (not past the deadline), send, map; read the echo soon."""
        wait = self.budget.wait_s(poll=False)
        if self._clock.now() + timedelta(seconds=wait) >= command.deadline:
            return CommandResult.failure(
                FailureReason.RATE_LIMITED, "Netatmo's request budget is spent", wait
            )
        try:
            body = await self.api.write(write.endpoint, form=write.form, json_body=write.json)
        except ApiError as exc:
            return errors.failure(exc)
        result = errors.partial_failure(body) or CommandResult.success()
        if result.ok:
            self.wake()
        return result


def _has_security(home: Mapping[str, Any]) -> bool:
    modules = home.get("modules")
    return isinstance(modules, list) and any(
        isinstance(m, Mapping) and isinstance(m.get("type"), str) and m["type"] in SECURITY_MODULES
        for m in modules
    )


def _module_ids(raw: Any) -> set[str]:
    """The string ids of a home's modules (anything else the normalizer reports)."""
    modules = raw.get("modules") if isinstance(raw, Mapping) else None
    if not isinstance(modules, list):
        return set()
    return {m["id"] for m in modules if isinstance(m, Mapping) and isinstance(m.get("id"), str)}
