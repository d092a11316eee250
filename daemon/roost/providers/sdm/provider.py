"""The Google SDM provider: a Pub/Sub pull loop and the `executeCommand` writes of one account.

A session lists the structures and devices (the full picture, and what starts SDM's
events), then long-polls the subscription. Each delivery is parsed, skipped if its eventId
was handled before, applied — trait values not older than what is held, device events not
reported before, relation updates re-read the device — and reported to the sink. Only then
are the handled ids written to the provider memory and the deliveries acknowledged: a
crash before the ack means a redelivery, and the remembered ids make it harmless
(at-least-once in, once out). A delivery that could not be applied for now (a read failed)
is nacked for a prompt redelivery; one that can never be used is counted and acknowledged,
and one without a usable ackId is counted and skipped (the rest of its pull goes on).

Any failure of the session (network, 5xx, quota) drops it: DISCONNECTED, back-off, and a
new session whose list is a full resync. A refresh token that no longer works ends `run`
with AUTH_FAILED.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Unpack

import anyio
import httpx
import structlog

from roost.core.commands import Command, CommandResult, FailureReason
from roost.core.errors import AuthError, ProviderError
from roost.core.model import Change, Device, Home, Structure, attributes
from roost.providers.base import ChangeSink
from roost.providers.bounds import check_devices
from roost.providers.core import CoreOptions, ProviderCore, counters
from roost.providers.health import PayloadHealth
from roost.providers.oauth import REFRESH_MARGIN
from roost.providers.readers import Problems
from roost.providers.registry import ProviderContext
from roost.providers.sdm import WRITE_LIMITS, SdmAccount, normalize
from roost.providers.sdm.api import SdmClient
from roost.providers.sdm.encode import encode
from roost.providers.sdm.errors import ApiError, to_result
from roost.providers.sdm.messages import Delivery, PayloadError, Pulled, SdmEvent, parse_event
from roost.providers.sdm.quota import SendLog
from roost.providers.sdm.records import DeviceRecord
from roost.providers.sdm.seen import Seen

log = structlog.get_logger(__name__)

HTTP_TIMEOUT = httpx.Timeout(15.0)  # the client's; a pull sets its own
EXECUTE_QUOTA = "executeCommand"
RELIST_S = 12 * 3600.0  # re-list while healthy, as google-nest-sdm does
MODE_TRAIT = "sdm.devices.traits.ThermostatMode"
SETTLE_TIMEOUT_S = 5.0  # to remember and acknowledge a handled batch, even while stopping


class SdmProvider(ProviderCore[DeviceRecord, tuple[str, dict[str, Any]]]):
    """One Google SDM account: `run` holds the Pub/Sub pull loop, `execute` sends commands."""

    http_timeout = HTTP_TIMEOUT  # a pull sets its own
    write_limits = WRITE_LIMITS

    def __init__(
        self,
        settings: SdmAccount,
        context: ProviderContext | None = None,
        *,
        token_margin_s: float = REFRESH_MARGIN.total_seconds(),
        **core: Unpack[CoreOptions],
    ) -> None:
        super().__init__(settings, context, **core)
        self.stats = counters(
            *("sessions", "pulls", "messages", "duplicates", "stale_values", "malformed"),
            *("relations", "glitches", "device_events", "repeated_device_events"),
            *("nacked", "ack_failures"),
        )  # glitches: updates refused as invalid (availableModes ["OFF"]) and re-read
        self._sent = SendLog(self._clock.monotonic)
        self._max_messages = settings.max_messages
        self._pull_timeout_s = settings.pull_timeout_s
        margin = timedelta(seconds=token_margin_s)
        self.auth = self._keeper(settings, settings.token_url, margin)
        self._api = SdmClient(self._client, self.auth, settings)
        self._seen = Seen(self.context.memory, self.account)
        self._structures: dict[str, Structure] = {}
        self._records: dict[str, DeviceRecord] = {}  # by resource name
        self._listed_at: datetime | None = None  # server time of this session's list
        self._listed_mono = float("-inf")  # clock.monotonic() of the last full list

    # --- subscription ----------------------------------------------------------------------

    async def run(self, sink: ChangeSink) -> None:
        """Pull until cancelled; returns only when the OAuth grant no longer works."""
        await self._seen.load()
        await super().run(sink)

    async def _subscription(self, sink: ChangeSink) -> None:
        await self._resync(sink)
        self.stats.sessions += 1
        while True:
            if self._clock.monotonic() - self._listed_mono >= RELIST_S:
                await self._resync(sink)  # a missed or wrong update cannot stick for long
            pulled = await self._pull()
            self.stats.pulls += 1
            for exc in pulled.unusable:
                self.stats.messages += 1
                self._skipped("a delivery", exc)
            deliveries = pulled.deliveries
            await self.supervisor.connected("pulling")
            if deliveries:
                await self._handle(deliveries, sink)

    async def _pull(self) -> Pulled:
        try:
            return await self._api.pull(self._max_messages, self._pull_timeout_s)
        except ApiError as exc:
            if exc.http_status != 403:
                raise
            # Retrying cannot help: only a person can grant the rights (or fix the name).
            raise AuthError(
                f"the Pub/Sub subscription refused the pull ({exc}): give the account's "
                "Google user the Pub/Sub Subscriber role on the subscription"
            ) from exc

    async def _resync(self, sink: ChangeSink) -> None:
        """The full picture: structures, then devices (which also starts SDM's events)."""
        structures = await self._api.list_structures()
        devices = await self._api.list_devices()
        at = devices.server_time or self._clock.now()
        self._structures = self._readable_structures(structures.body)
        records: dict[str, DeviceRecord] = {}
        for resource in _items(devices.body, "devices"):
            try:
                record = DeviceRecord.from_resource(resource, at)
            except PayloadError as exc:
                self._skipped("a device", exc)
                continue
            records[record.name] = record
        self._records, self._listed_at = records, at
        self._listed_mono = self._clock.monotonic()
        log.info("sdm.listed", account=self.account, devices=len(records))
        await self.supervisor.connected("pulling")
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
                    self._skipped(f"message {delivery.message_id}", exc)
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
            self._skipped(f"message {delivery.message_id}", exc)
        except AuthError:
            raise
        except ProviderError as exc:
            log.warning(
                "sdm.event_deferred", account=self.account, event=event.event_id, error=exc.detail
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
        except ProviderError as exc:
            # Unacknowledged deliveries come again after the ack deadline; the ids are known.
            self.stats.ack_failures += 1
            log.warning("sdm.ack_failed", account=self.account, error=str(exc) or repr(exc))

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
        if _modes_glitch(record, event.traits):
            # SDM sometimes sends availableModes ["OFF"] for a moment; google-nest-sdm treats
            # it as an invalid update and re-reads the device. So does roost.
            self.stats.glitches += 1
            fetched = await self._fetch(record.name)
            if fetched is not None:
                await self._replace(record, fetched, old, sink)
            return
        candidate = copy.deepcopy(record)
        applied = candidate.merge(event.traits, event.timestamp)
        offered = sum(len(values) for values in event.traits.values())
        self.stats.stale_values += offered - applied
        if not applied:
            return
        await self._replace(record, candidate, old, sink)

    async def _replace(
        self, record: DeviceRecord, candidate: DeviceRecord, old: Device | None, sink: ChangeSink
    ) -> None:
        """Keep `candidate` as the device and report what changed against `old`."""
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
        # A DELETED relation may only mean the device left a room: devices.get decides
        # (404: gone), and the re-read values are diffed against the last known home.
        record = await self._fetch(relation.object)
        if record is None:
            self._records.pop(relation.object, None)
        else:
            self._records[record.name] = record
        structure_id = normalize.structure_id_of(relation.subject)
        if structure_id is not None and structure_id not in self._structures:
            listed = await self._api.list_structures()
            self._structures = self._readable_structures(listed.body)
        await self._publish_home(sink)

    def _readable_structures(self, body: Any) -> dict[str, Structure]:
        """The listed structures; one that cannot be read is skipped and counted."""
        found: dict[str, Structure] = {}
        for resource in _items(body):
            try:
                structure = normalize.structure(resource)
            except PayloadError as exc:
                self._skipped("a structure", exc)
                continue
            found[structure.id] = structure
        return found

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
        problems = Problems()
        structures, records = self._structures.values(), self._records.values()
        home = normalize.home(
            self.account, structures, records, problems, lambda e: self._skipped("a device", e)
        )
        self._review(health, problems, home)
        return home

    # --- writes ----------------------------------------------------------------------------

    def _target(self, target_id: str) -> DeviceRecord | None:
        return self._records.get(self._api.device_name(target_id))

    def _no_target(self, target_id: str) -> CommandResult:
        if target_id in self._structures:
            return CommandResult.failure(
                FailureReason.INVALID, "Google SDM has no presence (home/away) control"
            )
        return super()._no_target(target_id)

    def _encode(self, command: Command, target: DeviceRecord) -> tuple[str, dict[str, Any]]:
        """An `executeCommand` for the device's traits."""
        return target.name, encode(command.action, command.target, target.traits)

    def _describe(self, write: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        return {"sdm_command": write[1]["command"]}

    async def _send(self, write: tuple[str, dict[str, Any]], command: Command) -> CommandResult:
        name, body = write
        keys = (EXECUTE_QUOTA, f"{name} {body['command']}")
        self._sent.record(*keys)
        try:
            await self._api.execute(name, body)
        except ApiError as exc:
            result = to_result(exc)
            if result.reason is FailureReason.RATE_LIMITED:
                return CommandResult.failure(
                    result.reason, result.detail, self._sent.retry_after(*keys)
                )
            return result
        except PayloadError:
            pass  # a 2xx whose body is not JSON: the command was still accepted
        return CommandResult.success()


def _modes_glitch(record: DeviceRecord, traits: Mapping[str, Mapping[str, Any]]) -> bool:
    """An update claiming a thermostat can only be OFF, when it could do more."""
    update = traits.get(MODE_TRAIT, {})
    if update.get("availableModes") != ["OFF"]:
        return False
    held = record.traits.get(MODE_TRAIT, {}).get("availableModes")
    return isinstance(held, list) and held != ["OFF"]


def _items(body: Any, key: str = "structures") -> list[Any]:
    items = body.get(key, []) if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise PayloadError(f"the {key} list is not a list")
    return items
