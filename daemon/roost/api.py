"""What a rule body gets as `home`: the current state and the actions it may take.

Every command goes through `Services.submit` (guards, then dispatch); every notification
through `Services.notify`. Each command carries the rule and event that caused it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from roost.commands import (
    Action,
    Command,
    SetCool,
    SetEco,
    SetFanTimer,
    SetHeat,
    SetMode,
    SetPresence,
    SetRange,
)
from roost.events import CommandOutcome, Event
from roost.ids import new_id
from roost.model import Device, Presence, SmokeCoAlarm, Structure, Thermostat, ThermostatMode
from roost.notify import Notification, Priority
from roost.state import HomeState

COMMAND_DEADLINE = timedelta(minutes=5)


@dataclass
class Services:
    """What the engine lends to rule runs."""

    state: HomeState
    submit: Callable[[Command], Awaitable[CommandOutcome]]
    notify: Callable[[Notification], Awaitable[None]]
    now: Callable[[], datetime]


class DeviceHandle:
    """A device as a rule sees it: its state at the time of the call, by attribute."""

    def __init__(self, home: RuleHome, device: Device) -> None:
        self._home = home
        self.state = device

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)

    def __repr__(self) -> str:
        return f"<{type(self.state).__name__} {self.state.name!r}>"


class ThermostatHandle(DeviceHandle):
    state: Thermostat

    async def set_mode(self, mode: str | ThermostatMode) -> CommandOutcome:
        return await self._home.command(self.state.id, SetMode(ThermostatMode(mode)))

    async def set_eco(self, on: bool = True) -> CommandOutcome:
        return await self._home.command(self.state.id, SetEco(on))

    async def set_heat(self, celsius: float) -> CommandOutcome:
        return await self._home.command(self.state.id, SetHeat(float(celsius)))

    async def set_cool(self, celsius: float) -> CommandOutcome:
        return await self._home.command(self.state.id, SetCool(float(celsius)))

    async def set_range(self, heat: float, cool: float) -> CommandOutcome:
        return await self._home.command(self.state.id, SetRange(float(heat), float(cool)))

    async def set_fan_timer(self, minutes: int) -> CommandOutcome:
        return await self._home.command(self.state.id, SetFanTimer(int(minutes)))


def _matches(device: Device, structure: str | None, room: str | None, name: str | None) -> bool:
    return (
        (structure is None or device.structure_id == structure)
        and (room is None or (device.room or "").casefold() == room.casefold())
        and (name is None or device.name.casefold() == name.casefold() or device.id == name)
    )


class RuleHome:
    """The `home` argument of a rule run."""

    def __init__(self, services: Services, rule: str, event: Event, dry_run: bool) -> None:
        self._services = services
        self.rule = rule
        self.event = event
        self.dry_run = dry_run

    @property
    def now(self) -> datetime:
        return self._services.now()

    # ---- reading -------------------------------------------------------------------

    def thermostats(
        self, *, structure: str | None = None, room: str | None = None, name: str | None = None
    ) -> list[ThermostatHandle]:
        return [
            ThermostatHandle(self, d)
            for d in self._services.state.devices()
            if isinstance(d, Thermostat) and _matches(d, structure, room, name)
        ]

    def alarms(self, *, structure: str | None = None) -> list[DeviceHandle]:
        return [
            DeviceHandle(self, d)
            for d in self._services.state.devices()
            if isinstance(d, SmokeCoAlarm) and _matches(d, structure, None, None)
        ]

    def device(self, ref: str | None = None) -> DeviceHandle | None:
        """A device by id or name; with no argument, the device of the event."""
        ref = ref if ref is not None else self.event.device
        if ref is None:
            return None
        for d in self._services.state.devices():
            if d.id == ref or d.name.casefold() == ref.casefold():
                return (
                    ThermostatHandle(self, d)
                    if isinstance(d, Thermostat)
                    else DeviceHandle(self, d)
                )
        return None

    def structure(self, ref: str | None = None) -> Structure | None:
        """A structure by id or name; with no argument, the structure of the event."""
        ref = ref if ref is not None else self.event.structure
        for s in self._services.state.structures():
            if s.id == ref or (ref is not None and s.name.casefold() == ref.casefold()):
                return s
        return None

    # ---- acting --------------------------------------------------------------------

    async def set_presence(self, presence: str | Presence, structure: str | None = None) -> None:
        target = structure or self.event.structure
        if target is not None:
            await self.command(target, SetPresence(Presence(presence)))

    async def command(self, target: str, action: Action) -> CommandOutcome:
        now = self._services.now()
        found = self._services.state.find(target)
        ctx = self.event.context
        command = Command(
            id=new_id("c"),
            account=found[0] if found else self.event.account,
            target=target,
            action=action,
            issued_at=now,
            deadline=now + COMMAND_DEADLINE,
            rule=self.rule,
            cause=self.event.id,
            correlation=ctx.correlation or self.event.id,
            depth=ctx.depth,
            dry_run=self.dry_run,
        )
        return await self._services.submit(command)

    async def notify(
        self,
        title: str,
        body: str = "",
        *,
        tags: tuple[str, ...] | list[str] = (),
        priority: str | Priority = Priority.NORMAL,
    ) -> None:
        await self._services.notify(
            Notification(
                key=f"{self.rule}:{self.event.id}:{title}",
                title=title,
                body=body,
                tags=tuple(tags),
                priority=Priority(priority),
                rule=self.rule,
                cause=self.event.id,
                created_at=self._services.now(),
            )
        )
