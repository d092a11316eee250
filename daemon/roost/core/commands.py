"""Vendor-free commands: what a rule asks a device (or a structure) to do.

An `Action` says what; a `Command` wraps it with who asked (rule, causing event), an
idempotency key (its id) and a deadline. `expected()` says which normalized attributes
the device's echo will show, so the echo can be recognised and the command confirmed; it
also says which attributes the action writes, so a newer action that writes all of them
supersedes an older one still waiting (`supersedes`: the last setpoint wins).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from roost.core.deferred import Deferred, same_fields
from roost.core.fastinit import fast_init, positional, stand_in
from roost.core.ids import next_number, spelled
from roost.core.model import Presence, ThermostatMode


@dataclass(frozen=True, slots=True)
class Not:
    """An expected value that is anything but this one (e.g. eco off: mode is not eco)."""

    value: Any


SETPOINT_RESOLUTION_C = 0.56  # a whole °F (0.56 °C) is the coarsest step a vendor rounds to


def satisfies(actual: Any, expected: Any) -> bool:
    """Does an observed attribute value show what the command expected?"""
    if isinstance(expected, Not):
        return actual is not None and not satisfies(actual, expected.value)
    if isinstance(actual, float) or isinstance(expected, float):
        if actual is None or expected is None:
            return False
        # Vendors round what they are sent (half degrees, or whole °F on a Fahrenheit
        # display), so a setpoint's echo can differ from the request by up to that step.
        return abs(float(actual) - float(expected)) <= SETPOINT_RESOLUTION_C
    return bool(actual == expected)


@dataclass(frozen=True, slots=True)
class Action:
    def expected(self) -> dict[str, Any]:
        return {}

    def describe(self) -> str:
        return type(self).__name__

    def idempotent(self) -> bool:
        """Once the device shows `expected()`, sending the action again changes nothing."""
        return True

    def supersedes(self, older: Action) -> bool:
        """This action writes every attribute `older` writes, so `older` need not be sent."""
        mine, theirs = self.expected(), older.expected()
        return bool(theirs) and theirs.keys() <= mine.keys()

    def shown_by(self, entity: object) -> bool:
        """Does the entity (a normalized device or structure) already show the effect?"""
        expected = self.expected()
        return bool(expected) and all(
            satisfies(getattr(entity, name, None), value) for name, value in expected.items()
        )


# A setpoint's text, per value: every outcome of a command says what it asked for, and
# formatting a float was most of the cost of saying it (rules ask for a handful of values).
_HEAT_TEXTS: dict[float, str] = {}
_COOL_TEXTS: dict[float, str] = {}
_TEXTS_KEPT = 256  # per kind: a rule computing its setpoints must not grow them unbounded


def _setpoint_text(texts: dict[float, str], template: str, celsius: float) -> str:
    """`template.format(celsius)`, remembered in `texts` for a plain float."""
    if type(celsius) is not float or not celsius:  # 0.0 and -0.0: one key, two texts
        return template.format(celsius)
    text = texts.get(celsius)
    if text is None:
        text = template.format(celsius)
        if len(texts) < _TEXTS_KEPT and celsius == celsius:  # NaN never matches a key
            texts[celsius] = text
    return text


@fast_init
@dataclass(frozen=True, slots=True)
class SetMode(Action):
    mode: ThermostatMode

    def expected(self) -> dict[str, Any]:
        return {"mode": self.mode}

    def describe(self) -> str:
        return f"set mode {self.mode}"


@fast_init
@dataclass(frozen=True, slots=True)
class SetEco(Action):
    on: bool

    def expected(self) -> dict[str, Any]:
        return {"mode": ThermostatMode.ECO if self.on else Not(ThermostatMode.ECO)}

    def describe(self) -> str:
        return "eco on" if self.on else "eco off"


@fast_init
@dataclass(frozen=True, slots=True)
class SetHeat(Action):
    celsius: float

    def expected(self) -> dict[str, Any]:
        return {"heat_setpoint_c": self.celsius}

    def describe(self) -> str:
        return _setpoint_text(_HEAT_TEXTS, "heat to {:g} °C", self.celsius)


# One `SetHeat` per setpoint a rule asks for (an action is immutable: one object serves
# every command that asks for the same value; rules ask for a handful of values).
HEAT_ACTIONS: dict[float, SetHeat] = {}


def heat_action(celsius: float) -> SetHeat:
    """`SetHeat(float(celsius))`, kept in `HEAT_ACTIONS` for a plain float (not ±0.0,
    whose texts differ under one key, nor NaN, which never matches one)."""
    value = float(celsius)
    action = SetHeat(value)
    if type(celsius) is float and value and value == value and len(HEAT_ACTIONS) < _TEXTS_KEPT:
        HEAT_ACTIONS[value] = action
    return action


@fast_init
@dataclass(frozen=True, slots=True)
class SetCool(Action):
    celsius: float

    def expected(self) -> dict[str, Any]:
        return {"cool_setpoint_c": self.celsius}

    def describe(self) -> str:
        return _setpoint_text(_COOL_TEXTS, "cool to {:g} °C", self.celsius)


@fast_init
@dataclass(frozen=True, slots=True)
class SetRange(Action):
    heat_celsius: float
    cool_celsius: float

    def expected(self) -> dict[str, Any]:
        return {"heat_setpoint_c": self.heat_celsius, "cool_setpoint_c": self.cool_celsius}

    def describe(self) -> str:
        return f"range {self.heat_celsius:g}–{self.cool_celsius:g} °C"


@fast_init
@dataclass(frozen=True, slots=True)
class SetFanTimer(Action):
    """Run the fan for `minutes`; 0 stops it."""

    minutes: int

    def expected(self) -> dict[str, Any]:
        return {"fan_timer_active": self.minutes > 0}

    def idempotent(self) -> bool:
        return self.minutes == 0  # starting the timer again restarts it

    def describe(self) -> str:
        return f"fan for {self.minutes} min" if self.minutes else "fan off"


@fast_init
@dataclass(frozen=True, slots=True)
class SetPresence(Action):
    """Applies to a structure, not a device."""

    presence: Presence

    def expected(self) -> dict[str, Any]:
        return {"presence": self.presence}

    def describe(self) -> str:
        return f"presence {self.presence}"


@fast_init
@dataclass(frozen=True, slots=True)
class Command:
    id: str
    account: str
    target: str
    action: Action
    issued_at: datetime
    deadline: datetime
    rule: str | None = None
    cause: str | None = None
    correlation: str | None = None
    depth: int = 0
    dry_run: bool = False
    # In a fleet, the worker sending it and its ownership epoch of the account's group
    # (set by the fence as the command passes it; providers send both along).
    writer: tuple[str, int] | None = None

    def describe(self) -> str:
        return f"{self.action.describe()} on {self.target}"


# `Command(...)` with every field in order, writer included (one per command a rule sends):
# id, account, target, action, issued_at, deadline, rule, cause, correlation, depth,
# dry_run, writer.
_Text = str | None
make_command: Callable[
    [str, str, str, Action, datetime, datetime, _Text, _Text, _Text, int, bool, None], Command
] = positional(Command)


class DeferredCommand(Command):
    """A rule's `Command` whose id is spelled when first read, from the number taken when
    it was made (`rule_command`), and whose deadline is worked out when first read: a dry
    run's command is never read by either (see `core.deferred`). Each is made once and
    kept, so every read gives the same value (the id unique, as `new_id("c")`'s); in every
    other way a `Command` (equal to one with the same fields)."""

    __slots__ = ("_number",)
    _number: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Command):
            return NotImplemented
        return same_fields(self, other, _COMMAND_FIELDS)

    __hash__ = Command.__hash__


def _spell(command: DeferredCommand) -> str:
    return spelled("c", command._number)


def _deadline(command: DeferredCommand) -> datetime:
    return command.issued_at + RULE_COMMAND_DEADLINE


# Set on the class after it is made: the dataclass machinery of `Command` is not redone.
DeferredCommand.id = Deferred(Command.__dict__["id"], _spell)  # type: ignore[assignment]
DeferredCommand.deadline = Deferred(Command.__dict__["deadline"], _deadline)  # type: ignore[assignment]


RULE_COMMAND_DEADLINE = timedelta(minutes=5)  # a rule's command not sent by then is stale
_COMMAND_FIELDS = tuple(f.name for f in dataclasses.fields(Command))
_DEFERRED_BUILDING = stand_in(DeferredCommand)
_new = object.__new__


def rule_command(
    account: str,
    target: str,
    action: Action,
    issued_at: datetime,
    rule: str | None,
    cause: str | None,
    correlation: str | None,
    depth: int,
    dry_run: bool,
) -> Command:
    """`make_command` for a rule's command (no writer yet), its id spelled if read and its
    deadline `RULE_COMMAND_DEADLINE` after `issued_at`."""
    made = _new(_DEFERRED_BUILDING)
    made._number = next_number()
    made.account = account
    made.target = target
    made.action = action
    made.issued_at = issued_at
    made.rule = rule
    made.cause = cause
    made.correlation = correlation
    made.depth = depth
    made.dry_run = dry_run
    made.writer = None
    made.__class__ = DeferredCommand
    command: Command = made
    return command


def plain_command(command: Command) -> Command:
    """`command` as a plain `Command`, every field made: for one read often (a queued
    one), each read of a deferred field being a call."""
    if type(command) is Command:
        return command
    return Command(*(getattr(command, name) for name in _COMMAND_FIELDS))


class FailureReason(StrEnum):
    """A vendor error, mapped to what it means for the command."""

    INVALID = "invalid"  # the vendor refused the value or the state (a semantic 4xx)
    UNAUTHORIZED = "unauthorized"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    OFFLINE = "offline"
    SERVER_ERROR = "server_error"
    NETWORK = "network"
    TIMEOUT = "timeout"
    UNCONFIRMED = "unconfirmed"  # the vendor accepted the write; the device never showed it

    @property
    def retryable(self) -> bool:
        return self in _RETRYABLE

    @property
    def maybe_applied(self) -> bool:
        """The vendor may have applied the write although the answer says it failed."""
        return self in _MAYBE_APPLIED


_RETRYABLE = frozenset(
    {
        FailureReason.RATE_LIMITED,
        FailureReason.SERVER_ERROR,
        FailureReason.NETWORK,
        FailureReason.TIMEOUT,
    }
)
_MAYBE_APPLIED = frozenset(
    {FailureReason.SERVER_ERROR, FailureReason.NETWORK, FailureReason.TIMEOUT}
)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to one vendor write. `ok` false always comes with a reason."""

    ok: bool
    reason: FailureReason | None = None
    detail: str = ""
    retry_after_s: float | None = None

    @classmethod
    def success(cls) -> CommandResult:
        return cls(True)

    @classmethod
    def failure(
        cls, reason: FailureReason, detail: str = "", retry_after_s: float | None = None
    ) -> CommandResult:
        return cls(False, reason, detail, retry_after_s)
