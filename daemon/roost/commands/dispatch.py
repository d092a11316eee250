"""Command dispatch: guards first, then the vendor, with every outcome on the bus.

`submit` is the only way a rule reaches a device. It checks the guards against the current
state, records a dry run, or queues the command in its target's lane. Each lane (one per
device or structure) sends one write at a time, in order: a newer command that writes the
same attributes supersedes an older one still waiting (the last setpoint wins). Before
each write the lane waits for the vendor's rate limits, checks the deadline and the guards
again (the house may have changed while it waited), and after a write it waits a little
for the device's echo, so the next write to that device starts from what it shows.

Timeouts, network errors and 5xx are retried with exponential back-off and jitter; a 429
waits for its Retry-After (and pauses the account); semantic 4xx are never retried. A
retry is never sent when the first attempt's effect already shows (its echo arrived, or
the state shows it): the vendors have no idempotency keys, so this check is the key.

Outcomes, all on the bus with the full causation (see `echo.outcome_event`): queued,
sent (each attempt), confirmed (the echo, with its latency), refused (which guard, why),
failed (typed vendor reason), dropped (stale or queue full), superseded, dry run.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import anyio
import structlog
from anyio.abc import TaskGroup

from roost.commands.guards import Limits, Refusal, WriteBudget, check, clearly_passes
from roost.commands.ratelimits import WriteThrottle
from roost.core.bus import Bus
from roost.core.clock import Clock, SystemClock
from roost.core.commands import Command, CommandResult, FailureReason, plain_command
from roost.core.events import CommandOutcome, Outcome, deferred_outcome
from roost.core.model import Device, Structure
from roost.core.redact import redact_text
from roost.host.log import enabled
from roost.host.logfold import LogFold
from roost.providers.base import Provider, write_limits
from roost.state.echo import EchoTracker, Place, outcome_event
from roost.state.home_state import HomeState

log = structlog.get_logger(__name__)

LANE_SIZE = 32  # commands waiting per device; beyond this a new one is dropped
SWEEP_S = 1.0  # how often writes whose echo never came are looked for


@dataclass(frozen=True)
class Tuning:
    """Retry and echo timing (the `[dispatch]` settings)."""

    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    max_attempts: int = 6
    echo_wait_s: float = 10.0  # the next write to a device waits this long for the echo
    echo_grace_s: float = 2.0  # a retry after a maybe-applied failure waits this long for it


@dataclass
class _Lane:
    """The writes waiting for one device (or structure), sent one at a time, in order."""

    target: str
    pending: deque[Command] = field(default_factory=deque)
    arrived: anyio.Event = field(default_factory=anyio.Event)
    busy: bool = False
    current: Command | None = None
    holding: bool = False  # `current` waits for its first turn (see Dispatcher._take_place)
    superseded: dict[str, str] = field(default_factory=dict)  # in-flight id → newer id

    def wake(self) -> None:
        self.arrived.set()
        self.arrived = anyio.Event()


class Dispatcher:
    def __init__(
        self,
        state: HomeState,
        bus: Bus,
        echoes: EchoTracker,
        limits: Limits,
        *,
        dry_run: bool = False,
        clock: Clock | None = None,
        tuning: Tuning | None = None,
    ) -> None:
        self._state = state
        self._bus = bus
        self._echoes = echoes
        self._limits = limits
        self.dry_run = dry_run
        self._clock = clock or SystemClock()
        self.tuning = tuning or Tuning()
        self._budget = WriteBudget()
        self._refusals = LogFold(60.0)
        self._providers: dict[str, Provider] = {}
        self._throttles: dict[str, WriteThrottle] = {}
        self._lanes: dict[str, _Lane] = {}
        self._tg: TaskGroup | None = None

    def add_provider(self, provider: Provider) -> None:
        self._providers[provider.account] = provider
        self._throttles[provider.account] = WriteThrottle(write_limits(provider))

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            try:
                for lane in self._lanes.values():
                    self._start(lane)
                await self._sweep()
            finally:
                self._tg = None

    # ---- submission ----------------------------------------------------------------

    async def submit(
        self,
        command: Command,
        now: datetime | None = None,
        found: tuple[str, Structure | Device] | None = None,
    ) -> CommandOutcome:
        """Guards, then a dry run or the queue. The outcome says which (never "sent").
        `now`: the wall-clock reading of the caller's synchronous stretch (`core.clock`),
        the time of an outcome decided here before any wait (a dry run, a refusal, no
        provider, a full queue); a queued or superseded one's time is read afresh.
        `found`: the caller's lookup of the target in this same stretch (a rule's command
        has just made it); None: it is looked up here."""
        if found is None:
            found = self._state.find(command.target)
        refusal = self._verdict(command, found)
        if refusal is not None:
            return await self._refuse(command, refusal, "submit", now)
        if command.dry_run or self.dry_run:
            if enabled(logging.INFO):
                log.info("dry run: command not sent", **_fields(command))
            # The outcome, made and offered here: a dry run is most of a dry-run daemon's
            # commands, and `_publish`'s place, keywords and coroutine were a third of it.
            if found is None:  # `_where`, inline
                structure, device = None, None
            elif isinstance(entity := found[1], Structure):
                structure, device = entity.id, None
            else:
                structure, device = entity.structure_id, entity.id
            at = now or self._clock.now()
            # its id and causation made only if read (see `DeferredOutcome`)
            event = deferred_outcome(command, _DRY_RUN_OUTCOME, at, structure, device, _DRY_RUN)
            full = self._bus.offer([event])
            if full is not None:
                await self._bus.overflow(full, [event])
            return event
        command = plain_command(command)  # to the queue: its fields are read from here on
        if command.account not in self._providers:
            return await self._publish(
                command,
                Outcome.FAILED,
                f"no provider for account {command.account!r}",
                failure=FailureReason.NOT_FOUND,
                at=now,
            )
        lane = self._lanes.get(command.target)
        if lane is None:  # not setdefault: a lane's default would be built on every call
            lane = self._lanes[command.target] = _Lane(command.target)
        if len(lane.pending) >= LANE_SIZE:
            log.warning("command dropped: queue full", **_fields(command))
            return await self._publish(
                command, Outcome.DROPPED, "the device's queue is full", at=now
            )
        for older in self._coalesce(lane, command):
            await self._publish(older, Outcome.SUPERSEDED, f"superseded by {command.id}")
        queued = await self._publish(command, Outcome.QUEUED, "guards passed")
        held = self._take_place(lane, command)
        if held is not None:
            await self._superseded(held, command.id)
            return queued
        lane.pending.append(command)
        if self._mark_in_flight(lane, command):
            lane.wake()  # the one in flight gives up its wait or retry
        self._start(lane)
        return queued

    def _coalesce(self, lane: _Lane, command: Command) -> list[Command]:
        """Take out the waiting commands this one supersedes."""
        replaced = [c for c in lane.pending if command.action.supersedes(c.action)]
        for older in replaced:
            lane.pending.remove(older)
        return replaced

    def _mark_in_flight(self, lane: _Lane, command: Command) -> bool:
        """Mark the lane's command in flight as superseded by `command`; True if newly."""
        current = lane.current
        if current is None or not command.action.supersedes(current.action):
            return False
        return lane.superseded.setdefault(current.id, command.id) == command.id

    def _take_place(self, lane: _Lane, command: Command) -> Command | None:
        """Put `command` in the place of the lane's command that waits for its first turn,
        if it supersedes it and nothing waits behind it (order kept); the one replaced.
        The lane's wait goes on for the new one: no wake-up, no new wait, no task."""
        held = lane.current
        if (
            held is None
            or not lane.holding
            or lane.pending
            or not command.action.supersedes(held.action)
            or command.deadline < held.deadline  # the wait may be timed by the deadline
        ):
            return None
        lane.current = command
        return held

    def _check(self, command: Command) -> Refusal | None:
        return self._verdict(command, self._state.find(command.target))

    def _verdict(
        self, command: Command, found: tuple[str, Structure | Device] | None
    ) -> Refusal | None:
        """The guards' verdict on the house as it is now (`found`: the target's lookup).
        The neighbours the guards read are the smoke/CO alarms of the target's structure
        (kept per structure by the state, so no guard check lists the whole structure).
        A setpoint in a quiet house is passed by the guards' passing path straight away;
        anything else goes to the table (`check`), which says which guard refuses and why."""
        budget = self._budget
        recent = budget.count(command.target, self._clock.monotonic()) if budget.writes else 0
        if found is None:
            return check(command, None, [], self._limits, recent)
        account, entity = found
        structure = entity.id if isinstance(entity, Structure) else entity.structure_id
        alarms = self._state.alarms_in(account, structure)
        if clearly_passes(command.action, entity, alarms, self._limits, recent):
            return None
        return check(command, entity, alarms, self._limits, recent)

    async def _refuse(
        self, command: Command, refusal: Refusal, stage: str, at: datetime | None = None
    ) -> CommandOutcome:
        # One line per rule per minute; the outcome event and the trace still get each one.
        folded = self._refusals.admit(command.rule or command.target, self._clock.monotonic())
        if folded is not None:
            log.warning(
                "command refused",
                **_fields(command),
                guard=refusal.guard,
                reason=refusal.reason,
                stage=stage,
                **({"refusals_not_logged_before": folded} if folded else {}),
            )
        # A guard's reason may quote a vendor's value or name.
        reason = redact_text(refusal.reason)
        return await self._publish(command, Outcome.REFUSED, reason, guard=refusal.guard, at=at)

    # ---- delivery, one lane at a time ------------------------------------------------

    def _start(self, lane: _Lane) -> None:
        if self._tg is not None and not lane.busy and lane.pending:
            lane.busy = True
            self._tg.start_soon(self._drain, lane, name=f"dispatch {lane.target}")

    async def _drain(self, lane: _Lane) -> None:
        try:
            while lane.pending:
                lane.current = lane.pending.popleft()
                try:
                    await self._deliver(lane)
                except Exception:  # a bug here must not stop the device's other writes
                    command = lane.current
                    lane.holding = False
                    log.exception("command delivery crashed", **_fields(command))
                    self._echoes.forget(command)
                    await self._publish(command, Outcome.FAILED, "internal error in dispatch")
                finally:
                    lane.superseded.pop(lane.current.id, None)
                    lane.current = None
        finally:
            lane.busy = False

    async def _deliver(self, lane: _Lane) -> None:
        attempt = 0
        while await self._wait_turn(lane, unsent=attempt == 0):
            command = lane.current  # another may have taken its place while it waited
            assert command is not None
            provider = self._providers[command.account]
            refusal = self._check(command)  # the house may have changed while it waited
            if refusal is not None:
                self._echoes.forget(command)
                await self._refuse(command, refusal, "send")
                return
            attempt += 1
            self._count_write(command)
            self._echoes.expect(command, self._place(command))
            reason = "" if attempt == 1 else "retry"
            await self._publish(command, Outcome.SENT, reason, attempt=attempt)
            result = await self._execute(provider, command)
            if result.ok:
                await self._settle(command)
                return
            if not await self._retry(lane, command, result, attempt):
                return

    async def _wait_turn(self, lane: _Lane, *, unsent: bool) -> bool:
        """Wait for the vendor's rate limits; False if the lane's command went stale or was
        superseded. While a command that was never sent waits (`unsent`), a newer one
        that supersedes it may take its place (`_take_place`): the wait goes on for it."""
        logged: Command | None = None
        lane.holding = unsent
        try:
            while True:
                command = lane.current
                assert command is not None
                newer = lane.superseded.get(command.id)
                stale = self._clock.now() >= command.deadline
                if newer is not None or stale:
                    lane.holding = False  # decided: no one takes its place from here on
                    await self._dropped_while_waiting(command, newer)
                    return False
                throttle = self._throttles[command.account]
                wait = throttle.wait_s(command.target, self._clock.monotonic())
                if wait <= 0:
                    return True
                if logged is not command and enabled(logging.INFO):
                    log.info("command delayed by rate limit", **_fields(command), wait_s=wait)
                    logged = command
                left = (command.deadline - self._clock.now()).total_seconds()
                await self._first(min(wait, max(left, 0.0)), lane.arrived)
        finally:
            lane.holding = False

    async def _dropped_while_waiting(self, command: Command, newer: str | None) -> None:
        if newer is not None:
            await self._superseded(command, newer)
            return
        self._echoes.forget(command)
        log.warning("command dropped: stale", **_fields(command))
        await self._publish(command, Outcome.DROPPED, "stale: its deadline passed unsent")

    async def _superseded(self, command: Command, newer: str) -> None:
        self._echoes.forget(command)
        if enabled(logging.INFO):
            log.info("command superseded", **_fields(command), by=newer)
        await self._publish(command, Outcome.SUPERSEDED, f"superseded by {newer}")

    def _count_write(self, command: Command) -> None:
        now = self._clock.monotonic()
        self._budget.record(command.target, now)
        self._throttles[command.account].take(command.target, now)

    async def _execute(self, provider: Provider, command: Command) -> CommandResult:
        try:
            return await provider.execute(command)
        except Exception as exc:  # a provider must not raise; if one does, it is a failure
            log.exception("provider raised on execute", **_fields(command))
            return CommandResult.failure(FailureReason.NETWORK, type(exc).__name__)

    async def _settle(self, command: Command) -> None:
        """After a write: confirm it from the state if nothing changes, else await the echo."""
        if self._confirm_if_shown(command, "already so"):
            await self._publish_confirmed(command, "already so")
            return
        settled = self._echoes.settled(command)
        if settled is not None:
            await self._first(self.tuning.echo_wait_s, settled)

    def _confirm_if_shown(self, command: Command, why: str) -> bool:
        """True (and the expectation forgotten) if the state already shows the effect."""
        if not self._echoes.is_pending(command):
            return False
        found = self._state.find(command.target)
        if found is None or not command.action.shown_by(found[1]):
            return False
        self._echoes.forget(command)
        log.info("command confirmed from the state", **_fields(command), why=why)
        return True

    async def _publish_confirmed(self, command: Command, why: str) -> None:
        await self._publish(command, Outcome.CONFIRMED, why, latency_s=0.0)

    # ---- retries -------------------------------------------------------------------

    async def _retry(
        self, lane: _Lane, command: Command, result: CommandResult, attempt: int
    ) -> bool:
        """Wait before the next attempt; False when there is none (its outcome published)."""
        assert result.reason is not None
        delay = self._retry_delay(result, attempt)
        if delay is not None and result.reason is FailureReason.RATE_LIMITED:
            self._throttles[command.account].pause(self._clock.monotonic() + delay)
        if delay is None or attempt >= self.tuning.max_attempts or self._too_late(command, delay):
            self._echoes.forget(command)
            await self._fail(command, result, attempt)
            return False
        log.info("command will be retried", **_fields(command), delay_s=delay, attempt=attempt)
        await self._back_off(lane, command, delay)
        if not self._echoes.is_pending(command):
            return False  # its echo came: the failed attempt had been applied after all
        if command.action.idempotent() and self._confirm_if_shown(command, "applied"):
            await self._publish_confirmed(command, "the state shows it applied")
            return False
        return True

    def _retry_delay(self, result: CommandResult, attempt: int) -> float | None:
        reason = result.reason
        if reason is None or not reason.retryable:
            return None
        if result.retry_after_s is not None:
            return result.retry_after_s
        cap = min(self.tuning.retry_max_s, self.tuning.retry_initial_s * 2 ** (attempt - 1))
        delay = random.uniform(cap / 2, cap)
        return max(delay, self.tuning.echo_grace_s) if reason.maybe_applied else delay

    def _too_late(self, command: Command, delay: float) -> bool:
        return (command.deadline - self._clock.now()).total_seconds() <= delay

    async def _back_off(self, lane: _Lane, command: Command, seconds: float) -> None:
        """Wait `seconds`, less if the echo settles the command or a newer one supersedes it."""
        until = self._clock.monotonic() + seconds
        while command.id not in lane.superseded:
            left = until - self._clock.monotonic()
            settled = self._echoes.settled(command)
            if left <= 0 or settled is None:
                return
            await self._first(left, lane.arrived, settled)

    async def _fail(self, command: Command, result: CommandResult, attempt: int) -> None:
        reason = f"{result.reason}: {result.detail}" if result.detail else str(result.reason)
        reason = redact_text(reason)  # a vendor's error body may echo a credential
        log.warning("command failed", **_fields(command), reason=reason, attempts=attempt)
        await self._publish(command, Outcome.FAILED, reason, failure=result.reason, attempt=attempt)

    # ---- waiting -------------------------------------------------------------------

    async def _first(self, seconds: float, *events: anyio.Event | None) -> None:
        """Wait `seconds` on the clock, or less if one of the events is set."""
        waited = [e for e in events if e is not None]
        if len(waited) == 1 and type(self._clock) is SystemClock:
            # The system clock is the event loop's: a deadline on the wait does it, with
            # no task (every held command waits here; tasks per wait were 15 % of a busy
            # loop). A virtual clock moves only when told to, so it needs its sleeper.
            with anyio.move_on_after(seconds):
                await waited[0].wait()
            return
        async with anyio.create_task_group() as tg:

            async def wake(wait: Callable[[], Awaitable[object]]) -> None:
                await wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wake, partial(self._clock.sleep, seconds))
            for event in events:
                if event is not None:
                    tg.start_soon(wake, event.wait)

    async def _sweep(self) -> None:
        """Report writes the vendor accepted but the device never showed."""
        while True:
            await self._clock.sleep(SWEEP_S)
            for gone in self._echoes.expired():
                log.warning("command unconfirmed", **_fields(gone.command), waited_s=gone.waited_s)
                await self._publish(
                    gone.command,
                    Outcome.FAILED,
                    f"no echo from the device within {gone.waited_s:.0f} s",
                    failure=FailureReason.UNCONFIRMED,
                )

    # ---- outcomes ------------------------------------------------------------------

    def _place(self, command: Command) -> Place:
        return _place_of(self._state.find(command.target))

    async def _publish(
        self,
        command: Command,
        outcome: Outcome,
        reason: str = "",
        place: Place | None = None,
        *,
        guard: str | None = None,
        failure: FailureReason | None = None,
        latency_s: float | None = None,
        attempt: int = 0,
        at: datetime | None = None,
    ) -> CommandOutcome:
        event = outcome_event(
            command,
            outcome,
            at or self._clock.now(),
            place if place is not None else self._place(command),
            reason=reason,  # our own words; vendor text is redacted where it comes in
            guard=guard,
            failure=failure,
            latency_s=latency_s,
            attempt=attempt,
        )
        await self._bus.publish([event])
        return event


def _place_of(found: tuple[str, Structure | Device] | None) -> Place:
    """Where a command's outcome happens: its target's structure and device."""
    return Place(*_where(found))


def _where(found: tuple[str, Structure | Device] | None) -> tuple[str | None, str | None]:
    """(structure, device) of a command's target (the device None for a structure)."""
    if found is None:
        return None, None
    entity = found[1]
    if isinstance(entity, Structure):
        return entity.id, None
    return entity.structure_id, entity.id


_DRY_RUN = "dry run: guards passed"
_DRY_RUN_OUTCOME = Outcome.DRY_RUN  # read once: a member read through its enum is a lookup


def _fields(command: Command) -> dict[str, object]:
    """What every dispatch log line says about a command (its causation included)."""
    return {
        "command": command.describe(),
        "command_id": command.id,
        "rule": command.rule,
        "cause": command.cause,
        "correlation": command.correlation,
    }
