"""The typed surface rule authors write against: device handles and the `Home` protocol.

    from roost import Home, PresenceChanged, rule, when

    @rule(on=when("presence", to="away"))
    async def eco_when_away(event: PresenceChanged, home: Home) -> None:
        for thermostat in home.thermostats(structure=event.structure):
            if thermostat.mode != "eco":
                await thermostat.set_eco(True)

A handle shows the device's state as it was when the rule asked for it, with typed
attributes (`thermostat.mode`, `alarm.co`), and carries the commands that apply to it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import fields
from datetime import date, datetime
from operator import attrgetter
from typing import Any, Literal, Protocol, TypeVar

from roost.core import model
from roost.core.commands import (
    HEAT_ACTIONS,
    Action,
    SetCool,
    SetEco,
    SetFanTimer,
    SetMode,
    SetRange,
    heat_action,
)
from roost.core.events import CommandOutcome, Event
from roost.core.model import AlarmState, BatteryHealth, HvacActivity, Presence, ThermostatMode
from roost.notify.notifier import Priority
from roost.rules.memory import Memory

T = TypeVar("T")

PriorityName = Priority | Literal["low", "normal", "high", "urgent"]
ModeName = ThermostatMode | Literal["heat", "cool", "heat-cool", "eco", "off"]
PresenceName = Presence | Literal["home", "away"]


class Commander(Protocol):
    """What a handle sends its commands through (the rule run's home)."""

    def command(self, target: str, action: Action) -> Coroutine[Any, Any, CommandOutcome]: ...


class Device:
    """Any device: its identity, room and whether the cloud sees it online."""

    __slots__ = ("_home", "state")  # two made per rule run, say: no dict each

    id: str
    name: str
    structure_id: str
    room: str | None
    online: bool
    state: model.Device

    def __init__(self, home: Commander, device: model.Device) -> None:
        self._home = home
        self.state = device

    def __repr__(self) -> str:
        return f"<{type(self.state).__name__} {self.state.name!r}>"


class Thermostat(Device):
    """A thermostat; the setpoints are the active ones for its mode (°C)."""

    __slots__ = ()

    state: model.Thermostat
    mode: ThermostatMode
    heat_setpoint_c: float | None
    cool_setpoint_c: float | None
    ambient_c: float | None
    humidity: float | None
    hvac: HvacActivity
    can_heat: bool
    can_cool: bool
    has_fan: bool
    fan_timer_active: bool
    fan_timer_until: datetime | None
    emergency_heat: bool
    allowed_range_c: tuple[float, float]
    locked: bool
    locked_range_c: tuple[float, float] | None
    eco_range_c: tuple[float, float] | None

    # Each returns the home's `command` coroutine itself (`await thermostat.set_heat(21)`
    # as with an `async def`), one coroutine less per command.

    def set_mode(self, mode: ModeName) -> Coroutine[Any, Any, CommandOutcome]:
        return self._home.command(self.state.id, SetMode(ThermostatMode(mode)))

    def set_eco(self, on: bool = True) -> Coroutine[Any, Any, CommandOutcome]:
        return self._home.command(self.state.id, SetEco(on))

    def set_heat(self, celsius: float) -> Coroutine[Any, Any, CommandOutcome]:
        # the action made for this value before: one lookup, no new object
        action = HEAT_ACTIONS.get(celsius) if type(celsius) is float else None
        return self._home.command(self.state.id, action or heat_action(celsius))

    def set_cool(self, celsius: float) -> Coroutine[Any, Any, CommandOutcome]:
        return self._home.command(self.state.id, SetCool(float(celsius)))

    def set_range(self, heat: float, cool: float) -> Coroutine[Any, Any, CommandOutcome]:
        return self._home.command(self.state.id, SetRange(float(heat), float(cool)))

    def set_fan_timer(self, minutes: int) -> Coroutine[Any, Any, CommandOutcome]:
        return self._home.command(self.state.id, SetFanTimer(int(minutes)))


class Alarm(Device):
    """A smoke and CO alarm."""

    __slots__ = ()

    state: model.SmokeCoAlarm
    smoke: AlarmState
    co: AlarmState
    battery: BatteryHealth


class Camera(Device):
    __slots__ = ()

    state: model.Camera
    streaming: bool


class Doorbell(Camera):
    __slots__ = ()

    state: model.Doorbell


def _read_through() -> None:
    """Every attribute of every kind of device reads through any handle to its state (as
    `getattr(handle.state, name)`), each with one C call. A `__getattr__` fallback would
    do the same, but its mere presence sends every attribute read of a handle, `state`
    too, through a Python-level hook first."""
    kinds = (model.Thermostat, model.SmokeCoAlarm, model.Camera, model.Doorbell)
    names = {"kind"} | {f.name for kind in kinds for f in fields(kind)}
    for name in sorted(names):
        setattr(Device, name, property(attrgetter(f"state.{name}")))


_read_through()


_KINDS: tuple[tuple[type[model.Device], type[Device]], ...] = (
    (model.Thermostat, Thermostat),
    (model.SmokeCoAlarm, Alarm),
    (model.Doorbell, Doorbell),  # before Camera: a doorbell is a camera
    (model.Camera, Camera),
)
_HANDLES: dict[type[model.Device], type[Device]] = {}  # device class → its handle class
_new = object.__new__


def _handle_class(kind: type[model.Device]) -> type[Device]:
    found: type[Device] = next((h for m, h in _KINDS if issubclass(kind, m)), Device)
    _HANDLES[kind] = found
    return found


def handle(home: Commander, device: model.Device) -> Device:
    """The handle class that fits the device, made as its `__init__` makes it but without
    the call (a type call to a Python `__init__` is most of a handle's cost)."""
    made: Device = _new(_HANDLES.get(type(device)) or _handle_class(type(device)))
    made._home = home
    made.state = device
    return made


class Home(Protocol):
    """The `home` a rule body gets: the current state and the actions it may take."""

    @property
    def rule(self) -> str:
        """The name of the rule being run."""
        ...

    @property
    def now(self) -> datetime: ...

    def local_now(self) -> datetime:
        """The current time in the home's time zone."""
        ...

    def sun(
        self, which: str, day: date | None = None, structure: str | None = None
    ) -> datetime | None:
        """Sunrise, sunset, dawn, dusk or noon of `day` (today) in the home's zone."""
        ...

    def thermostats(
        self, *, structure: str | None = None, room: str | None = None, name: str | None = None
    ) -> list[Thermostat]: ...

    def alarms(self, *, structure: str | None = None) -> list[Alarm]: ...

    def cameras(self, *, structure: str | None = None) -> list[Camera]: ...

    def device(self, ref: str | None = None) -> Device:
        """By id or name (no argument: the event's); raises UnknownDevice naming the known."""
        ...

    def find_device(self, ref: str | None = None) -> Device | None: ...

    def structure(self, ref: str | None = None) -> model.Structure | None: ...

    async def set_presence(self, presence: PresenceName, structure: str | None = None) -> None: ...

    async def notify(
        self,
        title: str,
        body: str = "",
        *,
        tags: list[str] | tuple[str, ...] = (),
        priority: PriorityName = Priority.NORMAL,
    ) -> bool: ...

    async def delay(self, duration: str | float) -> None: ...

    async def run_rule(self, name: str) -> bool: ...

    @property
    def memory(self) -> Memory:
        """Values that outlive the run and the daemon (in the store, shared by all rules)."""
        ...

    async def snapshot(self, name: str, *, structure: str | None = None) -> int:
        """Remember the thermostats' modes and setpoints under `name`."""
        ...

    async def restore(self, name: str) -> list[CommandOutcome]:
        """Put them back (ordinary commands: the guards apply)."""
        ...

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T: ...


__all__ = [
    "Alarm",
    "Camera",
    "Device",
    "Doorbell",
    "Event",
    "Home",
    "Thermostat",
    "handle",
]
