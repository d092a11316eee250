"""The Google SDM provider: a Pub/Sub pull loop and the `executeCommand` writes of one account.

A session lists the structures and devices (the full picture, and what starts SDM's
events), then long-polls the subscription. Each delivery is parsed, skipped if its eventId
was handled before, applied — trait values not older than what is held, device events not
reported before, relation updates re-read the device — and reported to the sink. Only then
are the handled ids written to the provider memory and the deliveries acknowledged: a
crash before the ack means a redelivery, and the remembered ids make it harmless
(at-least-once in, once out). A delivery that could not be applied for now (a read failed)
is nacked for a prompt redelivery; one that can never be used is counted and acknowledged.

Any failure of the session (network, 5xx, quota) drops it: DISCONNECTED, back-off, and a
new session whose list is a full resync. A refresh token that no longer works ends `run`
with AUTH_FAILED.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx
import structlog

from roost.clock import Clock, SystemClock
from roost.commands import Command, CommandResult, FailureReason
from roost.events import ConnectionState
from roost.model import Change, Device, Home, Structure, attributes
from roost.providers.backoff import Backoff
from roost.providers.base import (
    ChangeSink,
    HttpClientOwner,
    MemoryProviderMemory,
    MemoryTokenStore,
    ProviderMemory,
    Rate,
    TokenStore,
    WriteLimits,
)
from roost.providers.bounds import PayloadTooLarge, check_devices
from roost.providers.health import PayloadHealth
from roost.providers.readers import Problems
from roost.providers.sdm import normalize
from roost.providers.sdm.api import SdmClient
from roost.providers.sdm.auth import OAuthSession
from roost.providers.sdm.encode import EncodeError, encode
from roost.providers.sdm.errors import (
    QUOTA_RETRY_S,
    ApiError,
    AuthError,
    describe_transport_error,
    from_transport_error,
    to_result,
)
from roost.providers.sdm.messages import Delivery, PayloadError, SdmEvent, parse_event
from roost.providers.sdm.quota import SendLog
from roost.providers.sdm.records import DeviceRecord
from roost.providers.sdm.seen import Seen

log = structlog.get_logger(__name__)

API_URL = "https://smartdevicemanagement.googleapis.com/v1"
TOKEN_URL = "https://www.googleapis.com/oauth2/v4/token"
PUBSUB_URL = "https://pubsub.googleapis.com/v1"
HTTP_TIMEOUT = httpx.Timeout(15.0)  # the client's; a pull sets its own
# Sandbox limits (PROTOCOLS.md §3.4): executeCommand 10 QPM per user; each trait command
# 5 QPM per device (held here for all of a device's commands together, to stay clear of
# the device-instance limit other projects share).
WRITE_LIMITS = WriteLimits(per_device=Rate(burst=5, every_s=12.0), per_account=Rate(10, 6.0))
EXECUTE_QUOTA = "executeCommand"
SETTLE_TIMEOUT_S = 5.0  # to remember and acknowledge a handled batch, even while stopping


@dataclass
class PullStats:
    """Counters for the subscription, for metrics and tests."""

    sessions: int = 0
    pulls: int = 0
    messages: int = 0
    duplicates: int = 0
    stale_values: int = 0
    malformed: int = 0
    relations: int = 0
    device_events: int = 0
    repeated_device_events: int = 0
    nacked: int = 0
    ack_failures: int = 0
    disconnects: int = 0


class SdmProvider(HttpClientOwner):
    """One Google SDM account: `run` holds the Pub/Sub pull loop, `execute` sends commands."""

    def __init__(
        self,
        account: str,
        *,
        project_id: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        subscription: str,
        api_url: str = API_URL,
        token_url: str = TOKEN_URL,
        pubsub_url: str = PUBSUB_URL,
        tokens: TokenStore | None = None,
        memory: ProviderMemory | None = None,
        clock: Clock | None = None,
        max_messages: int = 100,
        pull_timeout_s: float = 90.0,
        token_margin_s: float = 60.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.account = account
        self.home: Home | None = None
        self.state: ConnectionState | None = None
        self.stats = PullStats()
        self.write_limits = WRITE_LIMITS  # read by the dispatcher
        self._clock = clock or SystemClock()
        self._sent = SendLog(self._clock.monotonic)
        self._max_messages = max_messages
        self._pull_timeout_s = pull_timeout_s
        self._backoff = Backoff(backoff_initial_s, backoff_max_s)
        self._use_client(client, timeout=HTTP_TIMEOUT)
        self.auth = OAuthSession(
            account,
            client=self._client,
            token_url=token_url,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
            store=tokens or MemoryTokenStore(),
            clock=self._clock,
            margin_s=token_margin_s,
        )
        self._api = SdmClient(
            self._client,
            self.auth,
            api_url=api_url,
            project_id=project_id,
            pubsub_url=pubsub_url,
            subscription=subscription,
        )
        self._seen = Seen(memory or MemoryProviderMemory(), account)
        self._structures: dict[str, Structure] = {}
        self._records: dict[str, DeviceRecord] = {}  # by resource name
        self._listed_at: datetime | None = None  # server time of this session's list

    def __repr__(self) -> str:
        return f"SdmProvider(account={self.account!r}, enterprise={self._api.enterprise!r})"

    # --- subscription ----------------------------------------------------------------------

    async def run(self, sink: ChangeSink) -> None:
        """Pull until cancelled; returns only when the OAuth grant no longer works."""
        await self._seen.load()
        while True:
            retry_after: float | None = None
            try:
                await self._session(sink)
            except AuthError as exc:
                log.error("sdm.auth_failed", account=self.account, reason=str(exc))
                await self._set_state(sink, ConnectionState.AUTH_FAILED, str(exc))
                return
            except ApiError as exc:
                reason = str(exc)
                retry_after = QUOTA_RETRY_S if exc.http_status == 429 else None
            except httpx.RequestError as exc:
                reason = describe_transport_error(exc)
            except (PayloadError, PayloadTooLarge) as exc:
                reason = f"unusable answer: {exc}"
                sink.payload_health(self.account).reject(reason[:200])
            self.stats.disconnects += 1
            await self._set_state(sink, ConnectionState.DISCONNECTED, reason)
            delay = retry_after if retry_after is not None else self._backoff.next()
            log.warning("sdm.reconnecting", account=self.account, reason=reason, delay_s=delay)
            await anyio.sleep(delay)

    async def _session(self, sink: ChangeSink) -> None:
        await self._resync(sink)
        self.stats.sessions += 1
        while True:
            deliveries = await self._api.pull(self._max_messages, self._pull_timeout_s)
            self.stats.pulls += 1
            self._backoff.reset()
            if deliveries:
                await self._handle(deliveries, sink)

    async def _resync(self, sink: ChangeSink) -> None:
        """The full picture: structures, then devices (which also starts SDM's events)."""
        structures = await self._api.list_structures()
        devices = await self._api.list_devices()
        at = devices.server_time or self._clock.now()
        self._structures = {s.id: s for s in map(normalize.structure, _items(structures.body))}
        records: dict[str, DeviceRecord] = {}
        for resource in _items(devices.body, "devices"):
            try:
                record = DeviceRecord.from_resource(resource, at)
            except PayloadError as exc:
                self.stats.malformed += 1
                log.warning("sdm.malformed_device", account=self.account, error=str(exc))
                continue
            records[record.name] = record
        self._records, self._listed_at = records, at
        log.info("sdm.listed", account=self.account, devices=len(records))
        await self._set_state(sink, ConnectionState.CONNECTED, "pulling")
        await self._publish_home(sink)

    # --- one batch of deliveries -------------------------------------------------------------

    async def _handle(self, deliveries: list[Delivery], sink: ChangeSink) -> None:
        acks: list[str] = []
        nacks: list[str] = []
        try:
            parsed: list[tuple[SdmEvent, Delivery]] = []
            for delivery in deliveries:
                self.stats.messages += 1
                try:
                    parsed.append((parse_event(delivery.data), delivery))
                except PayloadError as exc:
                    self._malformed(exc, delivery)
                    acks.append(delivery.ack_id)
            parsed.sort(key=lambda pair: pair[0].timestamp)
            for event, delivery in parsed:
                if await self._handle_one(event, delivery, sink):
                    acks.append(delivery.ack_id)
                else:
                    nacks.append(delivery.ack_id)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(SETTLE_TIMEOUT_S):
                await self._settle(acks, nacks)

    async def _handle_one(self, event: SdmEvent, delivery: Delivery, sink: ChangeSink) -> bool:
        """Apply one event; False if it should come again (a read it needed failed)."""
        if event.event_id in self._seen:
            self.stats.duplicates += 1
            return True
        try:
            await self._apply(event, sink)
        except PayloadError as exc:
            self._malformed(exc, delivery)
        except (ApiError, httpx.RequestError) as exc:
            detail = str(exc) if isinstance(exc, ApiError) else describe_transport_error(exc)
            log.warning(
                "sdm.event_deferred", account=self.account, event=event.event_id, error=detail
            )
            return False
        self._seen.add([event.event_id])
        return True

    async def _settle(self, acks: list[str], nacks: list[str]) -> None:
        """Remember what was handled, then acknowledge it (and nack what must come again)."""
        await self._seen.save()
        try:
            if acks:
                await self._api.acknowledge(acks)
            if nacks:
                self.stats.nacked += len(nacks)
                await self._api.modify_ack_deadline(nacks, 0)
        except (ApiError, AuthError, httpx.RequestError, PayloadError) as exc:
            # Unacknowledged deliveries come again after the ack deadline; the ids are known.
            self.stats.ack_failures += 1
            log.warning("sdm.ack_failed", account=self.account, error=str(exc) or repr(exc))

    def _malformed(self, exc: PayloadError, delivery: Delivery) -> None:
        self.stats.malformed += 1
        log.warning(
            "sdm.malformed_message",
            account=self.account,
            message=delivery.message_id,
            error=str(exc)[:200],
        )

    async def _apply(self, event: SdmEvent, sink: ChangeSink) -> None:
        if event.relation is not None:
            await self._relation(event, sink)
            return
        name = event.resource or ""
        record = self._records.get(name)
        if record is None:
            record = await self._adopt(name, sink)
            if record is None:
                return
        if event.traits:
            await self._traits(record, event, sink)
        if event.events:
            await self._device_events(record, event, sink)

    async def _adopt(self, name: str, sink: ChangeSink) -> DeviceRecord | None:
        """An update for a device not seen yet (its relation message may still be on the
        way): read it, and report it as added."""
        if not name.startswith(f"{self._api.enterprise}/devices/"):
            return None
        record = await self._fetch(name)
        if record is not None:
            self._records[name] = record
            await self._publish_home(sink)
        return record

    async def _traits(self, record: DeviceRecord, event: SdmEvent, sink: ChangeSink) -> None:
        assert event.traits is not None
        old = normalize.device(record, self._structures)
        candidate = copy.deepcopy(record)
        applied = candidate.merge(event.traits, event.timestamp)
        offered = sum(len(values) for values in event.traits.values())
        self.stats.stale_values += offered - applied
        if not applied:
            return
        new = normalize.device(candidate, self._structures)  # PayloadError: record untouched
        self._records[record.name] = candidate
        if old is None or new is None:
            return
        changes = [
            Change(new.id, name, getattr(new, name))
            for name in attributes(new)
            if getattr(old, name) != getattr(new, name)
        ]
        self.home = self._build_home(sink.payload_health(self.account))
        if changes:
            await sink.patch(self.account, changes, self._clock.now())

    async def _device_events(self, record: DeviceRecord, event: SdmEvent, sink: ChangeSink) -> None:
        listed_at = self._listed_at
        found = normalize.device_events(
            event,
            self.account,
            normalize.device(record, self._structures),
            at=self._clock.now(),
            catch_up=listed_at is not None and event.timestamp < listed_at,
        )
        for key, typed in found:
            if key in self._seen:
                self.stats.repeated_device_events += 1
                continue
            await sink.device_event(self.account, typed)
            self._seen.add([key])
            self.stats.device_events += 1

    async def _relation(self, event: SdmEvent, sink: ChangeSink) -> None:
        relation = event.relation
        assert relation is not None
        self.stats.relations += 1
        log.info("sdm.relation", account=self.account, type=relation.type, device=relation.object)
        record = None if relation.type == "DELETED" else await self._fetch(relation.object)
        if record is None:
            self._records.pop(relation.object, None)
        else:
            self._records[record.name] = record
        structure_id = normalize.structure_id_of(relation.subject)
        if structure_id is not None and structure_id not in self._structures:
            listed = await self._api.list_structures()
            self._structures = {s.id: s for s in map(normalize.structure, _items(listed.body))}
        await self._publish_home(sink)

    async def _fetch(self, name: str) -> DeviceRecord | None:
        """The device as SDM has it now; None if it no longer exists."""
        try:
            answer = await self._api.get_device(name)
        except ApiError as exc:
            if exc.http_status == 404:
                return None
            raise
        return DeviceRecord.from_resource(answer.body, answer.server_time or self._clock.now())

    async def _publish_home(self, sink: ChangeSink) -> None:
        self.home = self._build_home(sink.payload_health(self.account))
        await sink.snapshot(self.account, self.home, self._clock.now())

    def _build_home(self, health: PayloadHealth) -> Home:
        """The home from the records; its unreadable fields go to `health`."""
        check_devices(len(self._records))
        devices: dict[str, Device] = {}
        problems = Problems()
        for record in self._records.values():
            try:
                device = normalize.device(record, self._structures, problems)
            except PayloadError as exc:
                self.stats.malformed += 1
                log.warning("sdm.unusable_device", account=self.account, error=str(exc))
                continue
            if device is not None:
                devices[device.id] = device
        health.review(problems, keep=devices.keys() | self._structures.keys())
        return Home(self.account, dict(self._structures), devices)

    async def _set_state(self, sink: ChangeSink, state: ConnectionState, detail: str) -> None:
        if state is self.state:
            return
        self.state = state
        log.info("sdm.status", account=self.account, state=str(state), detail=detail)
        await sink.status(self.account, state, detail)

    # --- writes ----------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResult:
        """One `executeCommand`: encode the action for the device's traits, send, map."""
        name = self._api.device_name(command.target)
        record = self._records.get(name)
        if record is None:
            if command.target in self._structures:
                return CommandResult.failure(
                    FailureReason.INVALID, "Google SDM has no presence (home/away) control"
                )
            return CommandResult.failure(
                FailureReason.NOT_FOUND, f"unknown target {command.target}"
            )
        try:
            body = encode(command.action, command.target, record.traits)
        except EncodeError as exc:
            return CommandResult.failure(FailureReason.INVALID, str(exc))
        result = await self._send(name, body)
        log.info(
            "sdm.command",
            account=self.account,
            command=command.id,
            sdm_command=body["command"],
            ok=result.ok,
            reason=str(result.reason) if result.reason else None,
            detail=result.detail,
        )
        return result

    async def _send(self, name: str, body: dict[str, Any]) -> CommandResult:
        keys = (EXECUTE_QUOTA, f"{name} {body['command']}")
        self._sent.record(*keys)
        try:
            await self._api.execute(name, body)
        except AuthError as exc:
            return CommandResult.failure(FailureReason.UNAUTHORIZED, str(exc))
        except ApiError as exc:
            result = to_result(exc)
            if result.reason is FailureReason.RATE_LIMITED:
                return CommandResult.failure(
                    result.reason, result.detail, self._sent.retry_after(*keys)
                )
            return result
        except httpx.RequestError as exc:
            return from_transport_error(exc)
        except PayloadError:
            pass  # a 2xx whose body is not JSON: the command was still accepted
        return CommandResult.success()


def _items(body: Any, key: str = "structures") -> list[Any]:
    items = body.get(key, []) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise PayloadError(f"the {key} list is not a list")
    return items
