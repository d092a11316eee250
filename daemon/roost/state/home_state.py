"""Per-account current picture of the home; turns snapshots and patches into events.

`HomeState` is the providers' only way in (it implements `ChangeSink`). A snapshot is
diffed against what is held, a patch is applied attribute by attribute, and each
difference becomes a generic `AttributeChanged` plus, where one exists, the semantic event
a rule author reaches for first (`PresenceChanged`, `CoAlarm`, …). The batch goes to the bus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
import structlog

from roost.core.bus import Bus
from roost.core.codec import CodecError, entity_from_dict, entity_to_dict, to_json
from roost.core.events import (
    NO_CONTEXT,
    AccountStatus,
    AttributeChanged,
    Changed,
    ChangePair,
    CoAlarm,
    ConnectionState,
    ConnectivityChanged,
    Context,
    DeviceAdded,
    DeviceEvent,
    DeviceRemoved,
    Event,
    HvacChanged,
    PresenceChanged,
    SetpointChanged,
    SmokeAlarm,
    TemperatureChanged,
    ThermostatModeChanged,
    change_maker,
    change_pair,
)
from roost.core.fastinit import copier
from roost.core.ids import new_id
from roost.core.model import (
    AlarmState,
    Change,
    Device,
    Home,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    attributes,
)
from roost.core.redact import redact_text
from roost.providers.health import PayloadHealth
from roost.state.echo import EchoTracker

log = structlog.get_logger(__name__)

Entity = Structure | Device

# (class, attribute) → the semantic event for a change of that attribute.
SEMANTIC: dict[tuple[type[Any], str], type[Changed]] = {
    (Structure, "presence"): PresenceChanged,
    (Thermostat, "mode"): ThermostatModeChanged,
    (Thermostat, "ambient_c"): TemperatureChanged,
    (Thermostat, "heat_setpoint_c"): SetpointChanged,
    (Thermostat, "cool_setpoint_c"): SetpointChanged,
    (Thermostat, "hvac"): HvacChanged,
    (SmokeCoAlarm, "smoke"): SmokeAlarm,
    (SmokeCoAlarm, "co"): CoAlarm,
}
_ONLINE = "online"
_SKIP = frozenset({"id", "structure_id"})  # identity and membership: no event of their own
_PLAIN = frozenset({str, int, float, bool, type(None)})  # what to_json returns as it is
_ATTRIBUTE_CHANGED = change_maker(AttributeChanged)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the diff needs to know about one entity class, worked out once."""

    names: frozenset[str]  # its attributes
    deferrable: frozenset[str]  # those a patch may leave unfolded (see AccountState)
    # attribute → (its events' builder: `AttributeChanged` and the semantic one, id suffix)
    semantics: dict[str, tuple[ChangePair, str]]


_SHAPES: dict[type[Any], _Shape] = {}


def _shape(cls: type[Any]) -> _Shape:
    found = _SHAPES.get(cls)
    if found is None:
        names = frozenset(f.name for f in fields(cls))
        # Structures and smoke/CO alarms are copied at once; so is a change of identity
        # or membership.
        eager = issubclass(cls, Structure | SmokeCoAlarm)
        events = {name: event for (owner, name), event in SEMANTIC.items() if owner is cls}
        events.setdefault(_ONLINE, ConnectivityChanged)  # where SEMANTIC has nothing for it
        found = _SHAPES[cls] = _Shape(
            names,
            frozenset() if eager else names - _SKIP,
            {name: (change_pair(e), f"/{e.name}") for name, e in events.items()},
        )
    return found


_ABSENT_KEPT = 4096  # ids learnt absent, at most (a rule may ask for any name)


def _settle(acc: AccountState, home: Home) -> None:
    """The stored home is saved once a second; a change's identity is stored before its
    events go out, so after a crash an attribute's last published value can be newer than
    the stored home. Where the cloud now says something else again (CO cleared, then raised
    while roost was down), diff from that published value: what the cloud says is news, not
    the old change. Where the cloud agrees with it, the stored home stays, and that change
    is re-detected with its identity."""
    held: dict[str, Any] = {**acc.structures, **acc.devices}
    fresh: dict[str, Any] = {**home.structures, **home.devices}
    for target, name, published in acc.published():
        old, new = held.get(target), fresh.get(target)
        if old is None or new is None or name not in attributes(old):
            continue
        if published in (to_json(getattr(old, name)), to_json(getattr(new, name))):
            continue
        try:
            settled = entity_from_dict({**entity_to_dict(old), name: published})
        except (CodecError, TypeError, ValueError):
            continue  # not a value of this attribute now: the stored home stays
        if isinstance(settled, Structure):
            acc.structures[target] = settled
        else:
            acc.devices[target] = settled


@dataclass(slots=True)
class _Version:
    """One attribute's change identity: how many times it has changed (0: never), its
    value then, and the strings its change ids are made of (made once, not per change)."""

    key: str  # "target.attribute", as the store keeps it
    prefix: str  # "account/target.attribute/": a change id without its number
    number: int = 0
    published: Any = None


STALE_DEVICE_EVENT_S = 600.0  # motion, person, sound, chime: older than this means nothing now


@dataclass
class AccountState:
    account: str
    structures: dict[str, Structure] = field(default_factory=dict)
    # device id → the device as last folded. A patched reading of a device waits in
    # `unfolded` (id → attribute → value) until someone reads the device: copying a frozen
    # 25-field device per reading was most of a change's cost, and a stream of readings
    # nobody reads in between is folded once. Read devices through `devices` or `device`.
    held_devices: dict[str, Device] = field(default_factory=dict)
    unfolded: dict[str, dict[str, Any]] = field(default_factory=dict)
    connection: ConnectionState = ConnectionState.CONNECTING
    baseline: bool = False  # a first snapshot has been seen
    resyncing: bool = False  # the next snapshot follows a disconnect: its news is catch-up
    restored: bool = False  # from the store: the next snapshot settles it (see _settle)
    last_event_at: datetime | None = None
    # target → attribute → its change identity (`_Version`). It is stored before the
    # change's events go out, so a change re-detected after a crash (the stored home lags
    # behind) gets the same event id, and a rule's notification for it the same dedupe key.
    versions: dict[str, dict[str, _Version]] = field(default_factory=dict)
    reserved: list[tuple[str, int, Any]] = field(default_factory=list)
    baseline_seen: anyio.Event = field(default_factory=anyio.Event)
    settled: anyio.Event = field(default_factory=anyio.Event)  # connected or said why not
    health: PayloadHealth | None = None  # unreadable fields, skipped payloads (see health)

    # structure id → its device ids, and → its smoke/CO alarms' ids; rebuilt when
    # membership may have changed (a device added, removed, moved or replaced by a snapshot:
    # `members` is set to None), not on every reading.
    members: dict[str, list[str]] | None = None
    alarm_members: dict[str, list[str]] = field(default_factory=dict)

    @property
    def devices(self) -> dict[str, Device]:
        """Every device as it is now (pending readings folded in)."""
        if self.unfolded:
            for device_id in list(self.unfolded):
                self._fold(device_id)
        return self.held_devices

    @devices.setter
    def devices(self, devices: dict[str, Device]) -> None:
        self.unfolded.clear()
        self.held_devices = devices

    def published(self) -> Iterator[tuple[str, str, Any]]:
        """(target, attribute, its value when it last changed) of every change identity."""
        for target, by_name in self.versions.items():
            for name, version in by_name.items():
                if version.number:
                    yield target, name, version.published

    def version(self, target: str) -> dict[str, _Version]:
        """The change identities of `target`'s attributes (made empty on first use)."""
        return self.versions.setdefault(target, {})

    def new_version(self, versions: dict[str, _Version], target: str, name: str) -> _Version:
        """`target.name`, before its first change."""
        key = f"{target}.{name}"
        made = versions[name] = _Version(key, f"{self.account}/{key}/")
        return made

    def device(self, device_id: str) -> Device | None:
        """The device as it is now."""
        if device_id in self.unfolded:
            return self._fold(device_id)
        return self.held_devices.get(device_id)

    def _fold(self, device_id: str) -> Device:
        values = self.unfolded.pop(device_id, None)
        if values is None:  # folded meanwhile (a rule's worker thread reading the home)
            return self.held_devices[device_id]
        held = self.held_devices[device_id]
        # `_with_values` without its name check: the names were checked when the patch came in
        copy = _COPIERS.get(type(held)) or _copier_of(held)
        device: Device = copy[0](held, values)
        self.held_devices[device_id] = device
        return device

    def devices_in(self, structure: str) -> list[Device]:
        members = self.members if self.members is not None else self._index_members()
        return [self._member(i) for i in members.get(structure, ())]

    def alarms_in(self, structure: str) -> list[Device]:
        """The structure's smoke/CO alarms as they are now (what the alarm guard reads,
        without listing every device of the structure per command)."""
        if self.members is None:
            self._index_members()
        ids = self.alarm_members.get(structure)
        return [self._member(i) for i in ids] if ids else []

    def _member(self, device_id: str) -> Device:
        return self._fold(device_id) if device_id in self.unfolded else self.held_devices[device_id]

    def _index_members(self) -> dict[str, list[str]]:
        members: dict[str, list[str]] = {}
        alarms: dict[str, list[str]] = {}
        for device in self.held_devices.values():  # membership is never left unfolded
            members.setdefault(device.structure_id, []).append(device.id)
            if isinstance(device, SmokeCoAlarm):
                alarms.setdefault(device.structure_id, []).append(device.id)
        self.members, self.alarm_members = members, alarms
        return members

    def entity(self, target: str) -> Entity | None:
        return self.device(target) or self.structures.get(target)


class StateKeeper(Protocol):
    """What makes the picture durable (the store, through `persist.HomeKeeper`)."""

    def reserve_versions(self, account: str, reserved: Sequence[tuple[str, int, Any]]) -> None:
        """Make change identities durable before their events go out (see AccountState)."""

    async def save_home(self, account: str, home: Home) -> None:
        """Make the first picture of an account durable at once."""


class HomeState:
    """The current state of every account, and the diff that makes events."""

    def __init__(
        self,
        bus: Bus,
        echoes: EchoTracker,
        now: Callable[[], datetime] | None = None,
        keeper: StateKeeper | None = None,
    ) -> None:
        self._bus = bus
        self._echoes = echoes
        self._watched = echoes.watched
        self._keeper = keeper
        self._now = now or (lambda: datetime.now(UTC))
        self.accounts: dict[str, AccountState] = {}
        # entity id → its account's state, learnt by find() (the state itself, not the
        # account's name: a lookup needs no second dictionary; accounts are never replaced)
        self._owner: dict[str, AccountState] = {}
        # Ids no account has, learnt by find() (a rule's `home.thermostats(name=...)` asks
        # by name, which is first tried as an id); forgotten whenever an account's devices
        # or structures come or go (`_members_changed`), so a miss scans the accounts once.
        self._absent: set[str] = set()
        self.dirty: set[str] = set()  # accounts changed since the store last saved them

    # ---- reading -------------------------------------------------------------------

    def account(self, account: str) -> AccountState:
        state = self.accounts.get(account)
        if state is None:
            state = self.accounts[account] = AccountState(account)
        return state

    def restore(self, home: Home, versions: dict[str, tuple[int, Any]]) -> None:
        """Start from the last known state (from the store): the first live snapshot is
        then diffed against it, and what changed while roost was away becomes catch-up."""
        acc = self.account(home.account)
        acc.versions = {}
        for key, (number, published) in versions.items():
            target, _, name = key.rpartition(".")
            version = acc.new_version(acc.version(target), target, name)
            version.number, version.published = number, published
        acc.structures, acc.devices, acc.members = dict(home.structures), dict(home.devices), None
        self._members_changed()
        acc.baseline = True
        acc.resyncing = True
        acc.restored = True

    async def wait_baseline(self, account: str) -> None:
        """Wait until the account's first live full snapshot has arrived."""
        await self.account(account).baseline_seen.wait()

    def devices(self) -> Iterator[Device]:
        for acc in self.accounts.values():
            yield from acc.devices.values()

    def structures(self) -> Iterator[Structure]:
        for acc in self.accounts.values():
            yield from acc.structures.values()

    def find(self, target: str) -> tuple[str, Entity] | None:
        """The account and entity with this id (remembered: 10,000 accounts are not
        scanned per command)."""
        acc = self._owner.get(target)
        if acc is not None:  # `AccountState.entity`, inline: several per rule run
            if target in acc.unfolded:
                return acc.account, acc._fold(target)
            entity = acc.held_devices.get(target) or acc.structures.get(target)
            if entity is not None:
                return acc.account, entity
        elif target in self._absent:
            return None
        for acc in self.accounts.values():  # `AccountState.entity`, inline
            if target in acc.unfolded:
                return self._learn(target, acc, acc._fold(target))
            entity = acc.held_devices.get(target) or acc.structures.get(target)
            if entity is not None:
                self._owner[target] = acc
                return acc.account, entity
        self._owner.pop(target, None)
        if len(self._absent) >= _ABSENT_KEPT:
            self._absent = set()
        self._absent.add(target)
        return None

    def _members_changed(self) -> None:
        """Devices or structures came or went: an id learnt absent may be there now."""
        self._absent.clear()

    def _learn(self, target: str, acc: AccountState, entity: Entity) -> tuple[str, Entity]:
        self._owner[target] = acc
        return acc.account, entity

    def device(self, device_id: str) -> Device | None:
        acc = self._owner.get(device_id)
        if acc is not None:  # a device seen before: `find`'s first step, inline
            if device_id in acc.unfolded:
                return acc._fold(device_id)
            held = acc.held_devices.get(device_id)
            if held is not None:
                return held
        elif device_id in self._absent:  # a name, say: `find`'s miss, inline
            return None
        found = self.find(device_id)
        return found[1] if found is not None and isinstance(found[1], Device) else None

    def device_called(self, name: str, device_id: str) -> Device | None:
        """The device `device_id` if it is called `name` and `name` is no device's id (a
        rule asks by the name it found a device by before: `Services.find_device`). None
        also while `name` is not known to be no id: then ask `device(name)` first."""
        if name not in self._absent:
            return None
        acc = self._owner.get(device_id)
        if acc is None:
            return None
        if device_id in acc.unfolded:
            found: Device | None = acc._fold(device_id)
        else:
            found = acc.held_devices.get(device_id)
        return found if found is not None and found.name == name else None

    def device_name(self, device_id: str) -> str | None:
        """A device's name, without folding its pending readings (the engine asks this
        for every event about a device its index does not name by id)."""
        acc = self._owner.get(device_id)
        if acc is not None:
            held = acc.held_devices.get(device_id)
            if held is not None:
                pending = acc.unfolded.get(device_id)
                if pending is not None and "name" in pending:
                    name: str = pending["name"]
                    return name
                return held.name
        device = self.device(device_id)
        return device.name if device is not None else None

    def devices_in(self, account: str, structure: str) -> list[Device]:
        """The devices of one structure (a structure belongs to one account)."""
        return self.account(account).devices_in(structure)

    def alarms_in(self, account: str, structure: str) -> list[Device]:
        """The smoke/CO alarms of one structure, as they are now."""
        acc = self.accounts.get(account) or self.account(account)
        if acc.members is not None and structure not in acc.alarm_members:
            return []  # no alarm there (the common case, without `AccountState.alarms_in`)
        return acc.alarms_in(structure)

    def home(self, account: str) -> Home:
        acc = self.account(account)
        return Home(account, dict(acc.structures), dict(acc.devices))

    # ---- the ChangeSink ------------------------------------------------------------

    async def snapshot(self, account: str, home: Home, at: datetime) -> None:
        acc = self.account(account)
        self._members_changed()  # before any await: a diff's new devices are held below
        if not acc.baseline:
            acc.structures, acc.devices, acc.members = (
                dict(home.structures),
                dict(home.devices),
                None,
            )
            acc.baseline = True
            acc.resyncing = False
            self.dirty.add(account)
            if self._keeper is not None:
                await self._keeper.save_home(account, self.home(account))
            acc.baseline_seen.set()
            sounding: list[Event] = []
            for device in home.devices.values():
                self._sounding(acc, device, at, False, sounding)
            await self._publish(acc, sounding, at)
            return
        catch_up = acc.resyncing
        acc.resyncing = False
        if acc.restored:
            acc.restored = False
            _settle(acc, home)
        events: list[Event] = []
        self._diff_all(acc, acc.structures, dict(home.structures), at, catch_up, events)
        self._diff_all(acc, acc.devices, dict(home.devices), at, catch_up, events)
        acc.baseline_seen.set()
        self.dirty.add(account)
        if catch_up and events:
            log.info("resync found changes", account=account, events=len(events))
        await self._publish(acc, events, at)

    async def patch(self, account: str, changes: Sequence[Change], at: datetime) -> None:
        acc = self.accounts.get(account) or self.account(account)
        events: list[Event] = []
        if len(changes) == 1:  # most vendor pushes: one reading
            change = changes[0]
            if not self._reading(acc, change, at, events):
                self._patch_one(acc, change.target, {change.attribute: change.value}, at, events)
        else:
            by_target: dict[str, dict[str, Any]] = {}
            for change in changes:
                values = by_target.get(change.target)
                if values is None:
                    values = by_target[change.target] = {}
                values[change.attribute] = change.value
            for target, values in by_target.items():
                self._patch_one(acc, target, values, at, events)
        if acc.reserved or not events:
            if not self._note(acc, events, at):
                return
        else:  # `_note`'s common case, inline: nothing to make durable
            acc.last_event_at = at
            self.dirty.add(account)
        full = self._bus.offer(events)  # `publish` without its coroutine
        if full is not None:
            await self._bus.overflow(full, events)

    def _reading(self, acc: AccountState, change: Change, at: datetime, out: list[Event]) -> bool:
        """A patch of one reading of a device, as `_patch_one` takes it but without its
        dictionaries (the common case). False if it is not such a reading."""
        target, name, value = change.target, change.attribute, change.value
        held = acc.held_devices.get(target)
        if held is None:
            return False
        shape = _SHAPES.get(type(held)) or _shape(type(held))
        if name not in shape.deferrable:
            return False
        pending = acc.unfolded.get(target)
        if pending is None:
            acc.unfolded[target] = {name: value}
            before = getattr(held, name)
        else:
            before = pending[name] if name in pending else getattr(held, name)
            pending[name] = value
        if before != value:
            if target in self._watched:  # a command awaits its echo here: `_events`' way
                self._events(acc, held, shape, [(name, before, value)], at, False, out)
            else:
                self._change(acc, held, shape, name, before, value, at, False, NO_CONTEXT, out)
        return True

    def _patch_one(
        self, acc: AccountState, target: str, values: dict[str, Any], at: datetime, out: list[Event]
    ) -> None:
        held = acc.held_devices.get(target)
        entity: Entity | None = held if held is not None else acc.structures.get(target)
        if entity is None:
            log.warning("patch for unknown target skipped", account=acc.account, target=target)
            return
        shape = _SHAPES.get(type(entity)) or _shape(type(entity))
        if values.keys() <= shape.deferrable:
            # A reading: kept beside the held device until someone reads the device.
            pending = acc.unfolded.get(target)
            if pending is None:
                pending = acc.unfolded[target] = {}
            changed: list[tuple[str, Any, Any]] = []
            for name, value in values.items():
                before = pending[name] if name in pending else getattr(entity, name)
                pending[name] = value
                if before != value:
                    changed.append((name, before, value))
        else:
            if not values.keys() <= shape.names:
                log.warning("patch names an unknown attribute", account=acc.account, target=target)
                return
            # Structures, alarms and moves are copied at once (the alarm guard and the
            # structure index read them as they are).
            old = acc.entity(target)
            assert old is not None
            new = _with_values(old, values)
            assert new is not None
            self._store(acc, new)
            changed = [
                (name, getattr(old, name), value)
                for name, value in values.items()
                if name not in _SKIP and getattr(old, name) != value
            ]
        if changed:
            self._events(acc, entity, shape, changed, at, False, out)

    async def device_event(self, account: str, event: DeviceEvent) -> None:
        age_s = (self._now() - event.started_at).total_seconds()
        if age_s > STALE_DEVICE_EVENT_S:
            # A chime from yesterday, found in a backlog on start: nobody is at the door.
            log.info("stale device event not fired", account=account, kind=event.name, age_s=age_s)
            return
        await self._publish(self.account(account), [event], event.at)

    async def status(self, account: str, state: ConnectionState, detail: str = "") -> None:
        acc = self.account(account)
        if state is acc.connection and not detail:
            return
        acc.connection = state
        if state is not ConnectionState.CONNECTING:
            acc.settled.set()
        if not state.up and acc.baseline:
            acc.resyncing = True
        event = AccountStatus(
            id=new_id(),
            at=self._now(),
            account=account,
            state=state,
            detail=redact_text(detail),  # vendor error texts may echo a credential
        )
        await self._bus.publish([event])

    def payload_health(self, account: str) -> PayloadHealth:
        acc = self.account(account)
        if acc.health is None:
            acc.health = PayloadHealth(account)
        return acc.health

    def shown_state(self, account: str) -> tuple[ConnectionState, str]:
        """The account's state as status and metrics show it: connected but with unreadable
        fields or a skipped payload is "degraded", with the reason."""
        acc = self.account(account)
        reason = acc.health.reason if acc.health is not None else None
        if acc.connection is ConnectionState.CONNECTED and reason is not None:
            return ConnectionState.DEGRADED, redact_text(reason)  # it quotes a cloud value
        return acc.connection, ""

    # ---- the diff ------------------------------------------------------------------

    def _store(self, acc: AccountState, entity: Entity) -> None:
        if isinstance(entity, Structure):
            acc.structures[entity.id] = entity
            return
        old = acc.device(entity.id)
        if old is None or old.structure_id != entity.structure_id:
            acc.members = None
        acc.held_devices[entity.id] = entity

    def _diff_all(
        self,
        acc: AccountState,
        held: dict[str, Any],
        fresh: dict[str, Any],
        at: datetime,
        catch_up: bool,
        out: list[Event],
    ) -> None:
        context = Context(catch_up=True) if catch_up else NO_CONTEXT
        for key, new in fresh.items():
            old = held.get(key)
            if old is None:
                out.append(_presence_event(DeviceAdded, acc.account, new, at, context))
                self._sounding(acc, new, at, catch_up, out)
            elif old is not new and old != new:  # a normalizer keeps unchanged devices
                self._diff_one(acc, old, new, attributes(new), at, catch_up, out)
        for key, old in held.items():
            if key not in fresh:
                out.append(_presence_event(DeviceRemoved, acc.account, old, at, context))
        acc.members = None
        held.clear()
        held.update(fresh)

    def _sounding(
        self, acc: AccountState, device: Any, at: datetime, catch_up: bool, out: list[Event]
    ) -> None:
        """A smoke/CO alarm first seen above ok (in roost's first picture of a home, or a
        device added) is news, not a baseline: its alarm events, from unknown (fail open)."""
        if not isinstance(device, SmokeCoAlarm):
            return
        changed = [
            (name, None, value)
            for name in ("smoke", "co")
            if (value := getattr(device, name)) is not None and value is not AlarmState.OK
        ]
        if changed:
            self._events(acc, device, _shape(SmokeCoAlarm), changed, at, catch_up, out)

    def _diff_one(
        self,
        acc: AccountState,
        old: Entity,
        new: Entity,
        names: Any,
        at: datetime,
        catch_up: bool,
        out: list[Event],
    ) -> None:
        changed = [
            (name, getattr(old, name), getattr(new, name))
            for name in names
            if name not in _SKIP and getattr(old, name) != getattr(new, name)
        ]
        if changed:
            self._events(acc, new, _shape(type(new)), changed, at, catch_up, out)

    def _events(
        self,
        acc: AccountState,
        entity: Entity,
        shape: _Shape,
        changed: list[tuple[str, Any, Any]],
        at: datetime,
        catch_up: bool,
        out: list[Event],
    ) -> None:
        """The events for `changed` ((attribute, old value, new value), …) of one entity."""
        target = entity.id
        if catch_up or target in self._watched:  # `EchoTracker.is_watching`, inline
            context = self._context(target, changed, catch_up, at, out)
        else:
            context = NO_CONTEXT  # the common case, without a call
        for name, before, value in changed:
            self._change(acc, entity, shape, name, before, value, at, catch_up, context, out)

    def _change(
        self,
        acc: AccountState,
        entity: Entity,
        shape: _Shape,
        name: str,
        before: Any,
        value: Any,
        at: datetime,
        catch_up: bool,
        context: Context,
        out: list[Event],
    ) -> None:
        """One attribute's change: its identity, then its `AttributeChanged` and the
        semantic event where there is one."""
        target = entity.id
        versions = acc.versions.get(target) or acc.version(target)
        # The change's identity: how many times target.attribute has changed.
        version = versions.get(name) or acc.new_version(versions, target, name)
        plain = value if type(value) in _PLAIN else to_json(value)
        if not (catch_up and version.number and version.published == plain):
            version.number += 1  # else the same change, seen again
            version.published = plain
            if self._keeper is not None:
                acc.reserved.append((version.key, version.number, plain))
        change_id = f"{version.prefix}{version.number}"
        if isinstance(entity, Structure):
            structure, device = target, None
        else:
            structure, device = entity.structure_id, target
        semantic = shape.semantics.get(name)
        if semantic is None or value is None:
            # None is "unknown" (an unreadable value) or "none in this mode": no "alarm
            # cleared", no "mode changed", no "setpoint changed" is made up from it.
            out.append(
                _ATTRIBUTE_CHANGED(
                    change_id, at, acc.account, structure, device, context, before, value, name
                )
            )
            return
        pair, suffix = semantic
        pair(
            out, change_id, suffix, at, acc.account, structure, device, context, before, value, name
        )

    def _context(
        self,
        target: str,
        changed: list[tuple[str, Any, Any]],
        catch_up: bool,
        at: datetime,
        out: list[Event],
    ) -> Context:
        if not self._echoes.is_watching(target):
            return Context(catch_up=True) if catch_up else NO_CONTEXT
        values = {name: value for name, _, value in changed}
        cause, confirmed = self._echoes.match(target, values)
        out.extend(done.outcome(at) for done in confirmed)
        if cause is None:
            return Context(catch_up=True) if catch_up else NO_CONTEXT
        return Context(cause.id, cause.correlation, cause.rule, catch_up, cause.depth + 1)

    async def _publish(self, acc: AccountState, events: list[Event], at: datetime) -> None:
        if self._note(acc, events, at):
            await self._bus.publish(events)

    def _note(self, acc: AccountState, events: list[Event], at: datetime) -> bool:
        """Before `events` go out: their change identities made durable and the account
        marked changed. True if there is anything to publish."""
        if acc.reserved:
            reserved, acc.reserved = acc.reserved, []
            if self._keeper is not None:
                self._keeper.reserve_versions(acc.account, reserved)
        if not events:
            return False
        acc.last_event_at = at
        self.dirty.add(acc.account)
        return True


def _with_values(entity: Entity, values: dict[str, Any]) -> Entity | None:
    """A copy of a frozen entity with some attributes changed; None if one is unknown.

    Far cheaper than dataclasses.replace, which re-runs __init__ with every field: a
    generated copy per class, built in the class's stand-in (see fastinit).
    """
    copy, names = _COPIERS.get(type(entity)) or _copier_of(entity)
    if not values.keys() <= names:
        return None
    new: Entity = copy(entity, values)
    return new


# class → (its copier, its field names)
_COPIERS: dict[type[Any], tuple[Callable[[Any, dict[str, Any]], Any], frozenset[str]]] = {}


def _copier_of(entity: Entity) -> tuple[Callable[[Any, dict[str, Any]], Any], frozenset[str]]:
    """The copier of `entity`'s class, made on its first use."""
    cls = type(entity)
    names = attributes(entity)
    found = _COPIERS[cls] = (copier(cls, names), frozenset(names))
    return found


def _presence_event(
    cls: type[DeviceAdded] | type[DeviceRemoved],
    account: str,
    entity: Entity,
    at: datetime,
    context: Context,
) -> Event:
    if isinstance(entity, Structure):
        return cls(id=new_id(), at=at, account=account, structure=entity.id, context=context)
    return cls(
        id=new_id(),
        at=at,
        account=account,
        structure=entity.structure_id,
        device=entity.id,
        context=context,
    )
