"""A simulated home for rules: the real engine, state and guards on a virtual clock.

`simulate(rules, home)` runs rules against a home built from a small description (or a
recorded one); the clock moves only when told to, commands are dry runs that the
simulated devices take on (with the echo carrying its causation, as a real cloud's
would), and every command and notification is kept for inspection. `roost.testing` (the
pytest plugin) and `roost replay` are built on it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio

from roost.commands.dispatch import Dispatcher
from roost.commands.guards import Limits
from roost.core.bus import Bus
from roost.core.clock import VirtualClock, settle
from roost.core.commands import Command, Not
from roost.core.durations import parse_duration
from roost.core.events import (
    Chime,
    CommandOutcome,
    DeviceEvent,
    Event,
    Motion,
    Outcome,
    Person,
    Sound,
)
from roost.core.ids import new_id
from roost.core.model import (
    AlarmState,
    Camera,
    Change,
    Device,
    Doorbell,
    Home,
    SmokeCoAlarm,
    Structure,
    Thermostat,
    ThermostatMode,
)
from roost.core.timers import TimerPersistence
from roost.engine.engine import Engine, LoopLimits
from roost.engine.loader import load_directory, load_file
from roost.engine.rule_home import Found, Services
from roost.engine.traces import Trace
from roost.engine.windows import TagLimiter
from roost.notify.notifier import Notification
from roost.rules.author import Rule
from roost.rules.memory import InProcessKeyValues, KeyValues
from roost.rules.sun import Location
from roost.state.echo import EchoTracker, Place
from roost.state.home_state import HomeState

ACCOUNT = "test"
DEFAULT_START = "2026-01-05 12:00"  # a Monday
_KINDS: dict[str, type[Device]] = {
    "thermostats": Thermostat,
    "alarms": SmokeCoAlarm,
    "cameras": Camera,
    "doorbells": Doorbell,
}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.casefold()).strip("-")


def build_home(description: dict[str, Any]) -> Home:
    """A home from a small description.

    {"structure": "House", "presence": "home", "time_zone": "Europe/Berlin",
     "thermostats": {"Den": {"mode": "heat", "ambient_c": 19.5}}, "alarms": {"Hall": {}},
     "cameras": {...}, "doorbells": {...}}

    Ids are the names in lower case with dashes ("Living Room" → "living-room"); a
    device's room defaults to its name.
    """
    known = {"structure", "presence", "time_zone", *_KINDS}
    unknown = set(description) - known
    if unknown:
        raise ValueError(f"unknown home key {sorted(unknown)[0]!r}; known: {sorted(known)}")
    name = str(description.get("structure", "Home"))
    structure = Structure(
        id=slug(name),
        name=name,
        presence=description.get("presence", "home"),
        time_zone=description.get("time_zone"),
    )
    devices: dict[str, Device] = {}
    for key, cls in _KINDS.items():
        for device_name, attrs in description.get(key, {}).items():
            values = {"room": device_name, **attrs}
            if cls is Thermostat and "mode" in values:
                values["mode"] = ThermostatMode(values["mode"])
            device = cls(
                id=slug(device_name), name=device_name, structure_id=structure.id, **values
            )
            devices[device.id] = device
    return Home(ACCOUNT, {structure.id: structure}, devices)


class RunawayRule(AssertionError):
    """A rule run had to be stopped: the test fails instead of hanging."""


@dataclass(frozen=True)
class SentCommand:
    rule: str | None
    target: str  # the device's (or structure's) name
    action: str
    outcome: Outcome
    reason: str = ""
    at: datetime | None = None

    def __str__(self) -> str:
        return f"{self.target}: {self.action}"


@dataclass
class SimulatedHome:
    """The handle a test gets: change the home, move time, read what the rules did.

    The daemon's limits hold here too: a run that blocks past the block budget, sends
    more than the command cap, or runs the timeout in real time is stopped, and the test
    fails with `RunawayRule` at the next action on the home (or at the end)."""

    clock: VirtualClock
    state: HomeState
    engine: Engine
    bus: Bus
    echoes: EchoTracker
    apply_commands: bool
    commands: list[SentCommand] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)

    # ---- acting on the home --------------------------------------------------------

    async def set(self, name: str, **attributes: Any) -> None:
        """Change a structure's or device's attributes (by name or id), as the cloud would."""
        target = self.find(name)
        changes = [Change(target.id, k, v) for k, v in attributes.items()]
        await self.state.patch(self._account_of(target.id), changes, self.clock.now())
        await self._settle()

    async def emit(self, event: Event) -> None:
        """Put an event on the bus as it is."""
        await self.bus.publish([event])
        await self._settle()

    async def _settle(self) -> None:
        await settle()
        self.check_runaways()

    def check_runaways(self) -> None:
        """RunawayRule if a rule run was stopped (blocked, too many commands, no end)."""
        if self.engine.runaways:
            rule, why = self.engine.runaways[0]
            self.engine.runaways.clear()
            raise RunawayRule(f"rule {rule!r} was stopped: {why}")

    # One helper per event kind a rule can be written for (the others: `set`).

    async def motion(self, camera: str) -> None:
        await self._camera_event(Motion, camera)

    async def person(self, camera: str) -> None:
        """A camera saw a person (someone arriving at the door, say)."""
        await self._camera_event(Person, camera)

    async def sound(self, camera: str) -> None:
        await self._camera_event(Sound, camera)

    async def chime(self, doorbell: str) -> None:
        """Someone rang the doorbell."""
        await self._camera_event(Chime, doorbell)

    async def leave(self, structure: str) -> None:
        """Everyone left (a `presence` event to away)."""
        await self.set(structure, presence="away")

    async def arrive(self, structure: str) -> None:
        """Someone came home (a `presence` event to home)."""
        await self.set(structure, presence="home")

    async def offline(self, device: str) -> None:
        """The cloud lost the device (a `connectivity` event to offline)."""
        await self.set(device, online=False)

    async def online(self, device: str) -> None:
        await self.set(device, online=True)

    async def co(self, alarm: str, state: str) -> None:
        """`co("Hallway", "warning")`: ok, warning or emergency."""
        await self.set(alarm, co=AlarmState(state))

    async def smoke(self, alarm: str, state: str) -> None:
        await self.set(alarm, smoke=AlarmState(state))

    async def temperature(self, thermostat: str, celsius: float) -> None:
        await self.set(thermostat, ambient_c=float(celsius))

    async def _camera_event(self, cls: type[DeviceEvent], camera: str) -> None:
        device = self.find(camera)
        assert isinstance(device, Device)
        now = self.clock.now()
        await self.emit(
            cls(
                id=new_id(),
                at=now,
                account=self._account_of(device.id),
                structure=device.structure_id,
                device=device.id,
                started_at=now,
            )
        )

    async def advance(self, duration: str | float) -> None:
        """Move the virtual clock forward; holds, schedules and delays fire on the way."""
        await self.clock.advance(parse_duration(duration))
        self.check_runaways()

    async def advance_to(self, when: str | datetime) -> None:
        """Move the virtual clock to a local time of the home ("2026-03-08 03:00")."""
        target = _at(when, self.engine.services.zone)
        await self.advance(max(0.0, (target - self.clock.now()).total_seconds()))

    # ---- reading -------------------------------------------------------------------

    def find(self, name: str) -> Structure | Device:
        entities: list[Structure | Device] = [*self.state.structures(), *self.state.devices()]
        for entity in entities:
            if entity.id == name or entity.name.casefold() == name.casefold():
                return entity
        raise KeyError(f"no structure or device named {name!r}")

    def actions(self, outcome: Outcome | None = None) -> list[str]:
        """Commands as "Device: action", optionally only those with this outcome."""
        return [str(c) for c in self.commands if outcome is None or c.outcome is outcome]

    def titles(self) -> list[str]:
        return [n.title for n in self.notifications]

    def traces(self, rule: str | None = None) -> list[Trace]:
        return self.engine.traces.latest(rule, limit=1000)

    def local_now(self) -> datetime:
        return self.clock.now().astimezone(self.engine.services.zone)

    def clear(self) -> None:
        self.commands.clear()
        self.notifications.clear()

    # ---- the simulated cloud -------------------------------------------------------

    async def _submitted(self, command: Command, outcome: CommandOutcome) -> None:
        found = self.state.find(command.target)
        name = found[1].name if found else command.target
        self.commands.append(
            SentCommand(
                command.rule,
                name,
                command.action.describe(),
                outcome.outcome,
                outcome.reason,
                self.clock.now(),
            )
        )
        if self.apply_commands and outcome.outcome is Outcome.DRY_RUN and found:
            await self._echo(command, found[1])

    async def _echo(self, command: Command, entity: Structure | Device) -> None:
        changes = []
        for attribute, value in command.action.expected().items():
            if isinstance(value, Not):  # "anything but eco": go back to heating
                value = ThermostatMode.HEAT
            if getattr(entity, attribute, None) != value:
                changes.append(Change(entity.id, attribute, value))
        if changes:
            structure = entity.id if isinstance(entity, Structure) else entity.structure_id
            device = None if isinstance(entity, Structure) else entity.id
            self.echoes.expect(command, Place(structure, device))
            await self.state.patch(self._account_of(entity.id), changes, self.clock.now())

    def _account_of(self, target: str) -> str:
        found = self.state.find(target)
        return found[0] if found else ACCOUNT


def _at(when: str | datetime, zone: Any) -> datetime:
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=zone)
    return datetime.fromisoformat(when).replace(tzinfo=zone).astimezone(UTC)


def _zone_of(home: Home) -> str:
    zones = [s.time_zone for s in home.structures.values() if s.time_zone]
    return zones[0] if zones else "UTC"


def _rules(source: str | Path | Sequence[str | Path] | Sequence[Rule]) -> list[Rule]:
    items: list[Any] = [source] if isinstance(source, str | Path) else list(source)
    rules: list[Rule] = []
    for item in items:
        if isinstance(item, Rule):
            rules.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            result = load_directory(path)
            if result.errors:
                raise ValueError("\n".join(str(e) for e in result.errors))
            rules.extend(result.rules)
        else:
            rules.extend(load_file(path))
    return rules


@asynccontextmanager
async def simulate(
    rules: str | Path | Sequence[str | Path] | Sequence[Rule],
    home: dict[str, Any] | Home | None = None,
    *,
    start: str | datetime = DEFAULT_START,
    apply_commands: bool = True,
    limits: Limits | None = None,
    loop: LoopLimits | None = None,
    notify_limit: TagLimiter | None = None,
    timeout_s: float = 30.0,
    persistence: TimerPersistence | None = None,
    memory: KeyValues | None = None,
    location: tuple[float, float] | None = None,
) -> AsyncIterator[SimulatedHome]:
    """Run `rules` (files, a directory, or Rule objects) against a simulated `home`.

    `start` is a local time of the home ("2026-03-08 01:00"); the clock only moves when
    the test calls `advance`. Commands pass the real guards (`limits`). Pass the same
    `persistence` (and `memory`, e.g. a `store.StoreMemory`) to two runs to test what
    survives a restart. `location` (latitude, longitude) places the home for sun triggers.
    """
    built = home if isinstance(home, Home) else build_home(home or {"structure": "Home"})
    zone = ZoneInfo(_zone_of(built))
    clock = VirtualClock(_at(start, zone))
    bus = Bus()
    echoes = EchoTracker(clock=clock)
    state = HomeState(bus, echoes, now=clock.now)
    dispatcher = Dispatcher(state, bus, echoes, limits or Limits(), dry_run=True, clock=clock)
    sim: SimulatedHome

    async def submit(
        command: Command, now: datetime | None = None, found: Found | None = None
    ) -> CommandOutcome:
        outcome = await dispatcher.submit(command, now, found)
        await sim._submitted(command, outcome)
        return outcome

    async def notify(notification: Notification) -> None:
        sim.notifications.append(notification)

    services = Services(
        state,
        submit,
        notify,
        clock.now,
        clock=clock,
        zone=zone,
        notify_limit=notify_limit or TagLimiter(),
        memory=memory or InProcessKeyValues(),
        locations={"": Location(*location)} if location is not None else {},
    )
    engine = Engine(
        services,
        timeout_s=timeout_s,
        loop=loop or LoopLimits(),
        persistence=persistence,
        wall_timeout=True,
    )
    engine.load(_rules(rules))
    sim = SimulatedHome(clock, state, engine, bus, echoes, apply_commands)
    await state.snapshot(built.account, built, clock.now())
    inbox = bus.subscribe("engine", interest=engine.interest)
    failed: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(engine.run, inbox)
        await settle()
        try:
            yield sim
            sim.check_runaways()
        except Exception as exc:  # raised as it is, not wrapped in an exception group
            failed = exc
        finally:
            tg.cancel_scope.cancel()
    if failed is not None:
        raise failed
