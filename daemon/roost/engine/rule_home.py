"""What a rule body gets as `home`: the current state and the actions it may take.

Every command goes through `Services.submit` (guards, then dispatch); every notification
through `Services.notify`. Each command carries the rule and event that caused it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Protocol, TypeVar

import anyio.to_thread

from roost.core import model
from roost.core.clock import Clock, SystemClock
from roost.core.commands import Action, Command, SetPresence, rule_command
from roost.core.durations import parse_duration
from roost.core.events import CommandOutcome, Event
from roost.core.model import Presence, Structure
from roost.engine.isolation import RunDeadline, RunGuard
from roost.engine.traces import Trace, command_step
from roost.engine.windows import TagLimiter
from roost.notify.alarms import is_alarm_notification
from roost.notify.notifier import Notification, Priority
from roost.rules.memory import (
    InProcessKeyValues,
    KeyValues,
    Memory,
    load_snapshot,
    restoring,
    save_snapshot,
)
from roost.rules.sun import Locations, location_for, sun_time
from roost.rules.surface import (
    Alarm,
    Camera,
    Device,
    Home,
    PresenceName,
    PriorityName,
    Thermostat,
    handle,
)
from roost.state.home_state import Entity, HomeState

T = TypeVar("T")


ALARMS_KEPT = 1000


Found = tuple[str, Entity]  # `HomeState.find`'s answer: the account and the entity


class Submit(Protocol):
    """`Dispatcher.submit`: guards, then a dry run or the queue. `now`: the wall-clock
    reading of the caller's synchronous stretch (see `core.clock`), for an outcome decided
    at once; None: the clock is read. `found`: the target's `HomeState.find`, made in the
    same stretch; None: looked up there."""

    def __call__(
        self,
        command: Command,
        now: datetime | None = None,
        found: Found | None = None,
        /,
    ) -> Awaitable[CommandOutcome]: ...


@dataclass
class Services:
    """What the engine lends to rule runs.

    `clock` times everything the engine waits for (holds, schedules, cooldowns, delays);
    `zone` is the home's time zone for schedules and time-of-day conditions;
    `notify_limit` caps notifications per tag.
    """

    state: HomeState
    submit: Submit
    notify: Callable[[Notification], Awaitable[None]]
    now: Callable[[], datetime]
    clock: Clock = field(default_factory=SystemClock)
    zone: tzinfo = UTC
    notify_limit: TagLimiter | None = field(default_factory=TagLimiter)
    memory: KeyValues = field(default_factory=InProcessKeyValues)
    locations: Locations = field(default_factory=dict)
    _names: dict[str, str] = field(default_factory=dict, repr=False)  # casefolded name → id
    _spelled: dict[str, str] = field(default_factory=dict, repr=False)  # name as asked → id
    # The alarm events some run queued a push for (the latest ALARMS_KEPT): a run for an
    # alarm that fails makes roost push it itself only if none did (engine/runner).
    alarms_pushed: dict[str, None] = field(default_factory=dict, repr=False)

    def alarm_pushed(self, event_id: str) -> None:
        self.alarms_pushed[event_id] = None
        if len(self.alarms_pushed) > ALARMS_KEPT:
            del self.alarms_pushed[next(iter(self.alarms_pushed))]

    def find_device(self, ref: str) -> model.Device | None:
        """A device by id, or by name (case-insensitive), remembering names it has seen."""
        # A ref as rules spell it, found by name before: no case folding (rules ask by the
        # same name on every run), and no lookup by id while the state knows it is none.
        known = self._spelled.get(ref)
        if known is not None:
            found = self.state.device_called(ref, known)
            if found is not None:
                return found
        found = self.state.device(ref)
        if found is not None:
            return found
        found = self.state.device(known) if known is not None else None
        if found is not None and found.name == ref:
            return found
        key = ref.casefold()
        known = self._names.get(key)
        found = self.state.device(known) if known is not None else None
        if found is not None and found.name.casefold() == key:
            self._spelled[ref] = found.id
            return found
        # Unknown or stale: learn every name in one pass (the first match wins).
        names: dict[str, str] = {}
        for d in self.state.devices():
            names.setdefault(d.name.casefold(), d.id)
        self._names, self._spelled = names, {}
        known = names.get(key)
        return self.state.device(known) if known is not None else None


class UnknownDevice(LookupError):
    """`home.device(name)` for a device the home does not have."""


class RuleRunner(Protocol):
    """The engine, as a rule run sees it: it can run another rule."""

    async def run_rule(self, name: str, event: Event, caller: str) -> bool: ...

    def keep_delay(self, home: RuleHome, seconds: float, resume_at: int) -> str:
        """Store where the run will resume after this delay (step `resume_at` of a TOML
        rule); its id."""
        ...

    def forget_delay(self, delay_id: str) -> None: ...


# The handles rule bodies get (typed in `surface`); the old names stay for rule code.
DeviceHandle = Device
ThermostatHandle = Thermostat


def _matches(
    device: model.Device, structure: str | None, room: str | None, name: str | None
) -> bool:
    return (
        (structure is None or device.structure_id == structure)
        and (room is None or (device.room or "").casefold() == room.casefold())
        and (name is None or device.name.casefold() == name.casefold() or device.id == name)
    )


class RuleHome(RunGuard):
    """The `home` argument of a rule run, and the run's isolation guard: it counts the
    run's commands and marks roost's own code, so a block-budget stop waits until the
    rule's code runs again (no roost state left half-done). The engine's runs are
    `runner.Run`, a home with a deadline and a cancel scope (a timeout or a restart cancels
    it); a home made outside a run has neither."""

    # One per rule run (and per condition checked): slots, not a dict per instance.
    __slots__ = ("_dry_run", "_runner", "_services", "event", "first_stretch_at", "rule", "trace")

    scope: anyio.CancelScope | None = None  # a run's, once it waits (`runner.Run`)

    def __init__(
        self,
        services: Services,
        rule: str,
        event: Event,
        dry_run: bool,
        trace: Trace | None = None,
        runner: RuleRunner | None = None,
    ) -> None:
        super().__init__()
        self._services = services
        self.rule = rule
        self.event = event
        self._dry_run = dry_run
        self.trace = trace
        self._runner = runner
        self.first_stretch_at: datetime | None = None  # see `runner.Run`

    def deadline(self) -> RunDeadline:
        """When the run times out (`runner.Run`); outside a run, nothing to extend."""
        return RunDeadline(SystemClock(), 0.0)

    @property
    def now(self) -> datetime:
        return self._services.clock.now()

    def local_now(self) -> datetime:
        """The current time in the home's time zone."""
        return self._services.clock.now().astimezone(self._services.zone)

    def sun(
        self, which: str, day: date | None = None, structure: str | None = None
    ) -> datetime | None:
        """Today's (or `day`'s) sunrise, sunset, dawn, dusk or noon, in the home's zone;
        None without a location (`[location]`) or if the sun does not do it that day."""
        where = location_for(self._services.locations, structure or self.event.structure)
        if where is None:
            return None
        return sun_time(which, day or self.local_now().date(), where, self._services.zone)

    def _step(self, what: str, outcome: str, detail: str = "") -> None:
        if self.trace is not None:
            self.trace.step(what, outcome, detail)

    # ---- reading -------------------------------------------------------------------

    def thermostats(
        self, *, structure: str | None = None, room: str | None = None, name: str | None = None
    ) -> list[Thermostat]:
        """Thermostats by structure, room and/or name (or id); no argument: all of them."""
        if name is not None and structure is None and room is None:
            found = self._services.find_device(name)
            return [Thermostat(self, found)] if isinstance(found, model.Thermostat) else []
        return [
            Thermostat(self, d)
            for d in self._services.state.devices()
            if isinstance(d, model.Thermostat) and _matches(d, structure, room, name)
        ]

    def alarms(self, *, structure: str | None = None) -> list[Alarm]:
        return [
            Alarm(self, d)
            for d in self._services.state.devices()
            if isinstance(d, model.SmokeCoAlarm) and _matches(d, structure, None, None)
        ]

    def cameras(self, *, structure: str | None = None) -> list[Camera]:
        """Cameras and doorbells."""
        return [
            c
            for d in self._services.state.devices()
            if isinstance(d, model.Camera) and _matches(d, structure, None, None)
            for c in [handle(self, d)]
            if isinstance(c, Camera)
        ]

    def device(self, ref: str | None = None) -> Device:
        """A device by id or name; with no argument, the device of the event.
        No such device raises `UnknownDevice`, naming the devices the home has."""
        # `find_device`, inline (many rules' condition asks this once a run)
        event_device = self.event.device if ref is None else None
        if event_device is not None:
            found = self._services.state.device(event_device)
        else:
            found = self._services.find_device(ref) if ref is not None else None
        if found is None:
            names = sorted(d.name for d in self._services.state.devices())
            wanted = repr(ref) if ref is not None else "of the event"
            raise UnknownDevice(f"no device {wanted}; the home has: {', '.join(names) or 'none'}")
        return handle(self, found)

    def find_device(self, ref: str | None = None) -> Device | None:
        """Like `device`, but None when there is no such device."""
        if ref is None:  # the event's device: an id, never a name
            ref = self.event.device
            d = self._services.state.device(ref) if ref is not None else None
        else:
            d = self._services.find_device(ref)
        return handle(self, d) if d is not None else None

    def structure(self, ref: str | None = None) -> Structure | None:
        """A structure by id or name; with no argument, the structure of the event (for an
        event about no structure, a schedule say: the only structure, if there is one)."""
        ref = ref if ref is not None else self.event.structure
        if ref is None:
            only = list(self._services.state.structures())
            return only[0] if len(only) == 1 else None
        for s in self._services.state.structures():
            if s.id == ref or (ref is not None and s.name.casefold() == ref.casefold()):
                return s
        return None

    # ---- acting --------------------------------------------------------------------

    async def set_presence(self, presence: PresenceName, structure: str | None = None) -> None:
        target = structure or self.event.structure
        if target is not None:
            await self.command(target, SetPresence(Presence(presence)))

    async def command(self, target: str, action: Action) -> CommandOutcome:
        # `with self:` and `count_command`, inline (a command a run, in most runs): roost's
        # code runs from here on (`RunGuard.__enter__`)
        self.roost += 1
        try:
            if self.commands < self.max_commands:
                self.commands += 1
            else:
                self.count_command()  # one too many: it raises
            services, event = self._services, self.event
            now = self.first_stretch_at or services.clock.now()
            found = services.state.find(target)
            ctx = event.context
            command = rule_command(  # its id spelled only if read (`DeferredCommand`)
                found[0] if found else event.account,
                target,
                action,
                now,
                self.rule,
                event.id,
                ctx.correlation or event.id,
                ctx.depth,
                self._dry_run,
            )
            outcome = await services.submit(command, now, found)  # both of this stretch
            if self.trace is not None:
                self.trace.steps.append(command_step(outcome, found[1].name if found else target))
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        # back to the rule's code (`RunGuard.__exit__` with no exception, inline)
        self.roost -= 1
        if self.roost == 0 and self.deferred:
            self.deferred = False
            raise self.blocked()
        return outcome

    async def notify(
        self,
        title: str,
        body: str = "",
        *,
        tags: list[str] | tuple[str, ...] = (),
        priority: PriorityName = Priority.NORMAL,
    ) -> bool:
        """Send a push. False if the per-tag rate limit held it back (see the trace).

        An alarm (urgent, or sent by a run of a smoke/CO level change) is never limited."""
        with self:
            return await self._notify(title, body, tuple(tags), Priority(priority))

    async def _notify(
        self, title: str, body: str, tags: tuple[str, ...], priority: Priority
    ) -> bool:
        limiter = self._services.notify_limit
        now = self._services.clock.now()
        alarm = is_alarm_notification(priority, self.event)
        if limiter is not None and not alarm:
            over = limiter.admit(limiter.keys(tags, self.rule), now)
            if over is not None:
                detail = f"rate limit for {over}: {limiter.limit} per {limiter.window_s:g}s"
                self._step(f"notify {title!r}", "suppressed", detail)
                return False
        await self._services.notify(
            Notification(
                key=f"{self.rule}:{self.event.id}:{title}",
                title=title,
                body=body,
                tags=tuple(tags),
                priority=Priority(priority),
                rule=self.rule,
                cause=self.event.id,
                created_at=now,
                alarm=alarm,
                account=self.event.account,
            )
        )
        if alarm:
            self._services.alarm_pushed(self.event.id)
        detail = ", ".join(tags) + (" (alarm: not rate-limited)" if alarm else "")
        self._step(f"notify {title!r}", "queued", detail.strip())
        return True

    async def delay(self, duration: str | float) -> None:
        """Wait (on the engine's clock); the rule's timeout is extended by as much.
        A restart-mode rule is cancelled here by a newer trigger."""
        with self:
            await self._delay(duration)

    async def delay_resumable(self, duration: str | float, resume_at: int) -> None:
        """A TOML rule's delay: kept in the store, so after a restart the run resumes at
        step `resume_at` when the delay is over."""
        with self:
            await self._delay(duration, resume_at)

    async def _delay(self, duration: str | float, resume_at: int | None = None) -> None:
        seconds = parse_duration(duration)
        self._step(f"delay {seconds:g}s", "waiting")
        self.deadline().extend(seconds)  # a delay is not a hang
        runner, kept = None, ""
        if resume_at is not None and self._runner is not None:
            runner, kept = self._runner, self._runner.keep_delay(self, seconds, resume_at)
        try:
            await self._services.clock.sleep(seconds)
        except BaseException:
            # A stop keeps the stored resume point (the run goes on after the restart);
            # a timeout or a restart-mode cancel means the run is over for good.
            scope = self.scope
            if runner is not None and (scope is None or scope.cancel_called):
                runner.forget_delay(kept)
            raise
        if runner is not None:
            runner.forget_delay(kept)

    # ---- remembering ---------------------------------------------------------------

    @property
    def memory(self) -> Memory:
        """Values that outlive the run and the daemon (shared by every rule)."""
        return Memory(self._services.memory)

    async def snapshot(self, name: str, *, structure: str | None = None) -> int:
        """Remember the thermostats' modes and setpoints (of one structure, or all) under
        `name`; `restore(name)` puts them back. Returns how many were remembered."""
        thermostats = [t.state for t in self.thermostats(structure=structure)]
        count = await save_snapshot(self.memory, name, thermostats)
        self._step(f"snapshot {name!r}", "saved", f"{count} thermostat(s)")
        return count

    async def restore(self, name: str) -> list[CommandOutcome]:
        """Put the thermostats back as snapshot `name` found them. Each change is an
        ordinary command: the guards may refuse it (during a CO alarm, say)."""
        settings = await load_snapshot(self.memory, name)
        if settings is None:
            self._step(f"restore {name!r}", "failed", "no such snapshot")
            return []
        outcomes: list[CommandOutcome] = []
        for setting in settings:
            current = self._services.state.device(setting.id)
            if isinstance(current, model.Thermostat):
                for action in restoring(setting, current):
                    outcomes.append(await self.command(setting.id, action))
        return outcomes

    async def run_rule(self, name: str) -> bool:
        """Run another rule now with this event (its conditions and limits apply)."""
        if self._runner is None:
            self._step(f"run rule {name!r}", "failed", "no engine")
            return False
        with self:
            started = await self._runner.run_rule(name, self.event, self.rule)
        self._step(f"run rule {name!r}", "started" if started else "skipped")
        return started

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking code (file or network I/O, heavy maths) in a worker thread."""
        with self:
            return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)


def as_home(home: RuleHome) -> Home:
    """A rule run's home as the typed `Home` rule authors see (mypy checks the fit)."""
    return home
