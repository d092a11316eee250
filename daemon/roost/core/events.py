"""Typed, frozen events: what rules see.

Every event carries the account, structure and device it is about, when it happened, and
a `Context` that links it to its cause. `name` is the short name rules use to match it
(`on = { event = "presence", to = "away" }`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from roost.core.commands import Command, FailureReason
from roost.core.deferred import Deferred, same_fields
from roost.core.fastinit import fast_init, positional, positional_pair, stand_in
from roost.core.ids import next_number, spelled
from roost.core.model import AlarmState, HvacActivity, Presence, ThermostatMode


@dataclass(frozen=True, slots=True)
class Context:
    """Where an event comes from.

    causation: the id of the command whose echo this event is, if any.
    correlation: the id shared by a whole chain (event → rule → command → echo → …).
    rule: the rule whose command caused it (for loop protection and traces).
    catch_up: the change happened while roost was not watching (found on resync).
    depth: how many rule hops led here (0 for a change made by a person or the device).
    """

    causation: str | None = None
    correlation: str | None = None
    rule: str | None = None
    catch_up: bool = False
    depth: int = 0


NO_CONTEXT = Context()


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    name: ClassVar[str] = "event"
    id: str
    at: datetime
    account: str
    structure: str | None = None
    device: str | None = None
    context: Context = NO_CONTEXT


@dataclass(frozen=True, slots=True, kw_only=True)
class Changed(Event):
    """A value went from `old` to `new`. Rules filter with `from`/`to`."""

    name: ClassVar[str] = "changed"
    old: Any
    new: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeChanged(Changed):
    """Any attribute of a device or structure changed (one per attribute)."""

    name: ClassVar[str] = "attribute"
    attribute: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceChanged(Changed):
    name: ClassVar[str] = "presence"
    old: Presence | None
    new: Presence


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermostatModeChanged(Changed):
    name: ClassVar[str] = "thermostat_mode"
    old: ThermostatMode | None
    new: ThermostatMode


@dataclass(frozen=True, slots=True, kw_only=True)
class TemperatureChanged(Changed):
    """The ambient temperature a thermostat measures changed."""

    name: ClassVar[str] = "temperature"
    old: float | None
    new: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetpointChanged(Changed):
    """A heat or cool setpoint changed; `attribute` says which."""

    name: ClassVar[str] = "setpoint"
    old: float | None
    new: float | None
    attribute: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HvacChanged(Changed):
    name: ClassVar[str] = "hvac"
    old: HvacActivity | None
    new: HvacActivity


@dataclass(frozen=True, slots=True, kw_only=True)
class SmokeAlarm(Changed):
    name: ClassVar[str] = "smoke"
    old: AlarmState | None
    new: AlarmState


@dataclass(frozen=True, slots=True, kw_only=True)
class CoAlarm(Changed):
    name: ClassVar[str] = "co"
    old: AlarmState | None
    new: AlarmState


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectivityChanged(Changed):
    name: ClassVar[str] = "connectivity"
    old: bool | None
    new: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceAdded(Event):
    name: ClassVar[str] = "device_added"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRemoved(Event):
    name: ClassVar[str] = "device_removed"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceEvent(Event):
    """Something a camera or doorbell saw or heard; `started_at` is the vendor's time."""

    name: ClassVar[str] = "device_event"
    started_at: datetime
    vendor_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Motion(DeviceEvent):
    name: ClassVar[str] = "motion"


@dataclass(frozen=True, slots=True, kw_only=True)
class Person(DeviceEvent):
    name: ClassVar[str] = "person"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sound(DeviceEvent):
    name: ClassVar[str] = "sound"


@dataclass(frozen=True, slots=True, kw_only=True)
class Chime(DeviceEvent):
    name: ClassVar[str] = "chime"


class ConnectionState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    # subscribed, but something is wrong (the detail says what): a provider's report, or
    # unreadable fields / a skipped payload (the state layer's payload health)
    DEGRADED = "degraded"
    DISCONNECTED = "disconnected"
    RECOVERING = "recovering"  # the provider crashed and is being restarted
    AUTH_FAILED = "auth_failed"

    @property
    def up(self) -> bool:
        """The subscription is there: changes arrive."""
        return self in (ConnectionState.CONNECTED, ConnectionState.DEGRADED)


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountStatus(Event):
    """An account's subscription connected, dropped or lost its authorization."""

    name: ClassVar[str] = "account"
    state: ConnectionState
    detail: str = ""


class Outcome(StrEnum):
    QUEUED = "queued"  # past the guards, waiting for its device's turn
    SENT = "sent"  # one vendor write attempt (`attempt` counts them)
    CONFIRMED = "confirmed"  # the device's echo (or the state) shows the effect
    REFUSED = "refused"  # a guard said no (`guard`, `reason`)
    FAILED = "failed"  # the vendor said no or never answered (`failure`, `reason`)
    DROPPED = "dropped"  # stale (deadline passed) or the queue was full
    SUPERSEDED = "superseded"  # a newer command writes the same attributes; it was not sent
    DRY_RUN = "dry_run"  # guards passed, recorded, never sent


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandOutcome(Event):
    """What became of a command. Rules can trigger on it (e.g. eco could not be set)."""

    name: ClassVar[str] = "command"
    command: str
    action: str
    outcome: Outcome
    rule: str | None = None
    reason: str = ""
    guard: str | None = None
    latency_s: float | None = None
    target: str | None = None  # the device or structure the command addressed
    cause: str | None = None  # the event the rule ran for
    failure: FailureReason | None = None  # FAILED: the vendor error, typed
    attempt: int = 0  # SENT / FAILED: which vendor write attempt


EVENT_TYPES: dict[str, type[Event]] = {
    cls.name: cls
    for cls in (
        AttributeChanged,
        PresenceChanged,
        ThermostatModeChanged,
        TemperatureChanged,
        SetpointChanged,
        HvacChanged,
        SmokeAlarm,
        CoAlarm,
        ConnectivityChanged,
        DeviceAdded,
        DeviceRemoved,
        Motion,
        Person,
        Sound,
        Chime,
        AccountStatus,
        CommandOutcome,
    )
}


class Delivery(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"
    DEAD = "dead"
    RATE_LIMITED = "rate_limited"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationOutcome(Event):
    """What became of a notification (delivered to every target, retrying, given up)."""

    name: ClassVar[str] = "notification"
    key: str
    title: str
    delivery: Delivery
    rule: str | None = None
    targets: int = 0
    reason: str = ""


EVENT_TYPES[NotificationOutcome.name] = NotificationOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Scheduled(Event):
    """A rule's schedule came due: a cron time, an interval, or a restored timer."""

    name: ClassVar[str] = "schedule"
    schedule: str
    due_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Started(Event):
    """The daemon started (rules with a `startup()` trigger run once)."""

    name: ClassVar[str] = "started"


EVENT_TYPES[Scheduled.name] = Scheduled
EVENT_TYPES[Started.name] = Started


def _fast_inits(cls: type[Any]) -> None:
    """Every event class (and `Context`) built with the cheaper `__init__` (see fastinit).
    A class without its own `__slots__` is the discarded original of a slots dataclass."""
    if "__slots__" in cls.__dict__:
        fast_init(cls)
    for sub in cls.__subclasses__():
        _fast_inits(sub)


fast_init(Context)
_fast_inits(Event)

ChangeMaker = Callable[
    [str, datetime, str, str | None, str | None, Context, Any, Any, str], Changed
]
_CHANGE_FIELDS = ("id", "at", "account", "structure", "device", "context", "old", "new")


def change_maker(cls: type[Changed]) -> ChangeMaker:
    """A positional constructor for the state diff's change events: `make(id, at, account,
    structure, device, context, old, new, attribute)` builds `cls` as its `__init__`
    would (`attribute` is dropped by the classes that have no such field).

    Keyword arguments are most of an event's construction cost on the hot path; this
    takes them in a fixed order and builds the event in its stand-in (see fastinit).
    """
    names = tuple(f.name for f in dataclasses.fields(cls))
    if names not in (_CHANGE_FIELDS, (*_CHANGE_FIELDS, "attribute")):
        raise TypeError(f"{cls.__name__} has fields {names}, not a change event's")
    maker: ChangeMaker = positional(cls, (*_CHANGE_FIELDS, "attribute"))
    return maker


# `pair(out, id, suffix, at, account, structure, device, context, old, new, attribute)`
ChangePair = Callable[
    [list[Any], str, str, datetime, str, str | None, str | None, Context, Any, Any, str], None
]


def change_pair(cls: type[Changed]) -> ChangePair:
    """A change's two events in one call: `pair(out, id, suffix, at, account, structure,
    device, context, old, new, attribute)` appends to `out` its `AttributeChanged` (id
    `id`) and its semantic event, a `cls` with id `id + suffix`, each as its `__init__`
    would build it. Most changes have both: one call and one argument list, not two."""
    change_maker(cls)  # the same field check
    pair: ChangePair = positional_pair(
        AttributeChanged, cls, ("id", "suffix", *_CHANGE_FIELDS[1:], "attribute"), "id + suffix"
    )
    return pair


OutcomeMaker = Callable[
    [
        str,
        datetime,
        str,
        str | None,
        str | None,
        Context,
        str,
        str,
        "Outcome",
        str | None,
        str,
        str | None,
        float | None,
        str | None,
        str | None,
        FailureReason | None,
        int,
    ],
    CommandOutcome,
]


# `CommandOutcome(...)` with every field in order (one per command outcome, and keyword
# arguments were half of its cost): id, at, account, structure, device, context, command,
# action, outcome, rule, reason, guard, latency_s, target, cause, failure, attempt.
make_outcome: OutcomeMaker = positional(CommandOutcome)
# `Context(causation, correlation, rule, catch_up, depth)`, all five in order.
make_context: Callable[[str | None, str | None, str | None, bool, int], Context] = positional(
    Context
)


class DeferredOutcome(CommandOutcome):
    """A `CommandOutcome` whose `id`, `context`, `command` (the command's id) and `action`
    (its text) are made when first read, from its command and the id's number taken when
    it was made: most outcomes of a dry run are read by nobody (see `core.deferred`).
    Each is made once and kept, so every read gives the same value (the id unique, as
    `new_id`'s). Made by `deferred_outcome`; in every other way a `CommandOutcome` (equal
    to one with the same fields)."""

    __slots__ = ("_made_for", "_number")
    _made_for: Command
    _number: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CommandOutcome):
            return NotImplemented
        return same_fields(self, other, _OUTCOME_FIELDS)

    __hash__ = CommandOutcome.__hash__


def _spell(outcome: DeferredOutcome) -> str:
    return spelled("e", outcome._number)


def _causation(outcome: DeferredOutcome) -> Context:
    c: Command = outcome._made_for
    return make_context(c.id, c.correlation, c.rule, False, c.depth)


def _command_id(outcome: DeferredOutcome) -> str:
    return outcome._made_for.id


def _action_text(outcome: DeferredOutcome) -> str:
    return outcome._made_for.action.describe()


# Set on the class after it is made: the dataclass machinery of `CommandOutcome` is not redone.
DeferredOutcome.id = Deferred(Event.__dict__["id"], _spell)  # type: ignore[assignment]
DeferredOutcome.context = Deferred(Event.__dict__["context"], _causation)  # type: ignore[assignment]
DeferredOutcome.command = Deferred(CommandOutcome.__dict__["command"], _command_id)  # type: ignore[assignment]
DeferredOutcome.action = Deferred(CommandOutcome.__dict__["action"], _action_text)  # type: ignore[assignment]
_OUTCOME_FIELDS = tuple(f.name for f in dataclasses.fields(CommandOutcome))
_DEFERRED_BUILDING = stand_in(DeferredOutcome)
_new = object.__new__


def deferred_outcome(
    command: Command,
    outcome: Outcome,
    at: datetime,
    structure: str | None,
    device: str | None,
    reason: str,
) -> CommandOutcome:
    """The outcome of `command` decided at once (a dry run), as `make_outcome` would make
    it with a new id, the command's causation, id and text (those made when first read)."""
    made = _new(_DEFERRED_BUILDING)
    made._made_for = command
    made._number = next_number()
    made.at = at
    made.account = command.account
    made.structure = structure
    made.device = device
    made.outcome = outcome
    made.rule = command.rule
    made.reason = reason
    made.guard = None
    made.latency_s = None
    made.target = command.target
    made.cause = command.cause
    made.failure = None
    made.attempt = 0
    made.__class__ = DeferredOutcome
    deferred: CommandOutcome = made
    return deferred
