"""One worker of a fleet: runs the accounts of the groups it owns, and nothing else.

On gaining a group: its accounts' last known state is read back from the store (so what
changed during the gap comes out of the first snapshot as catch-up events), then their
providers start. On losing one (a rebalance, or the lock session gone): the group is fenced
first (no command or notification write passes any more), then its providers stop.
Commands pass `FencedProvider`, which records each one under the group's epoch before the
vendor write; notifications are fenced by the store (roost.store.postgres.PgStore.fence).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import psycopg
import structlog
from anyio.abc import TaskGroup

from roost.cluster.fleet import FleetRunner, Submit
from roost.cluster.ownership import Ownership
from roost.config.settings import ClusterSettings
from roost.core.bus import Bus
from roost.core.codec import CodecError, home_from_dict
from roost.core.commands import Command, CommandResult, FailureReason
from roost.core.timers import TimerKind, TimerRecord, Timers
from roost.providers.base import ChangeSink, Provider, WriteLimits, write_limits
from roost.state.home_state import HomeState
from roost.store import fence
from roost.store.postgres import PgStore

log = structlog.get_logger(__name__)

WHEEL_KINDS = ("hold", "debounce")  # (a delay resumes at the next start of its worker)
Supervise = Callable[[Provider], Coroutine[Any, Any, None]]
# Reads the alarms roost pushed itself about these accounts (`Alerts.adopt`).
AdoptAlarms = Callable[[Sequence[str]], Awaitable[int]]


def account_groups(names: Sequence[str], shared: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    """Group name → its accounts: each listed group is named after its first account; every
    other account is a group of its own."""
    groups: dict[str, list[str]] = {}
    grouped: set[str] = set()
    for members in shared:
        groups[members[0]] = list(members)
        grouped.update(members)
    for name in names:
        if name not in grouped:
            groups[name] = [name]
    return groups


class ClusterWorker:
    def __init__(
        self,
        settings: ClusterSettings,
        store: PgStore,
        state: HomeState,
        providers: Sequence[Provider],
        password: str | None = None,
        submit: Submit | None = None,
        timers: Timers | None = None,
        bus: Bus | None = None,
        adopt_alarms: AdoptAlarms | None = None,
    ) -> None:
        self.worker = settings.worker
        self._adopt_alarms = adopt_alarms
        self._bus = bus  # the dispatcher's outcomes, for fleet commands
        self._timers = timers
        self._submit = submit
        self._store = store
        self._state = state
        self._providers = {p.account: p for p in providers}
        self.groups = account_groups(list(self._providers), settings.groups)
        self._group_of = {a: g for g, members in self.groups.items() for a in members}
        self.epochs: dict[str, int] = {}  # the groups this worker may write for, now
        self.commands_fenced = 0  # commands refused for want of ownership
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._gained: list[str] = []  # claimed, not yet caught up and started
        self._tg: TaskGroup | None = None
        self._supervise: Supervise | None = None
        self.ownership = Ownership(
            store.url,
            self.worker,
            list(self.groups),
            self._gain,
            self._lose,
            password=password,
            check_s=settings.check_s,
            timeout_s=settings.lock_timeout_s,
        )
        store.fence = self

    def fenced(self, provider: Provider) -> FencedProvider:
        return FencedProvider(provider, self)

    def owns(self, account: str) -> bool:
        return self._group_of.get(account) in self.epochs

    def group_of(self, account: str) -> str | None:
        return self._group_of.get(account)

    async def check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Raise `fence.Fenced` unless this worker's lock session is alive (called inside
        the transaction of an outbox write)."""
        await self.ownership.check_session(conn)

    async def run(self, supervise: Supervise) -> None:
        self._supervise = supervise
        async with anyio.create_task_group() as tg:
            self._tg = tg
            if self._submit is not None and self._bus is not None:
                runner = FleetRunner(
                    self._store.pool, self.worker, self.epochs, self._state, self._submit, self._bus
                )
                tg.start_soon(runner.run)
            await self.ownership.run()

    async def _gain(self, group: str, epoch: int) -> None:
        self.epochs[group] = epoch
        self._scopes[group] = anyio.CancelScope()
        self._gained.append(group)
        if len(self._gained) == 1:  # the first of a claim round: one catch-up for them all
            assert self._tg is not None
            self._tg.start_soon(self._start_gained)

    async def _start_gained(self) -> None:
        await anyio.lowlevel.checkpoint()  # the rest of this claim round joins the batch
        groups, self._gained = self._gained, []
        live = [g for g in groups if g in self._scopes]
        # The last known state first: what changed during the gap becomes catch-up.
        accounts = [a for g in live for a in self.groups[g]]
        await self._catch_up(accounts)
        await self._adopt_timers(accounts)
        await self._adopt_kept_alarms(accounts)  # before a stream shows their clearing
        assert self._tg is not None
        for group in live:
            scope = self._scopes.get(group)
            if scope is not None:
                self._tg.start_soon(self._serve, scope, self.groups[group])

    async def _lose(self, group: str) -> None:
        self.epochs.pop(group, None)  # fenced at once: nothing more is written for it
        scope = self._scopes.pop(group, None)
        if scope is not None:
            scope.cancel()

    async def _catch_up(self, accounts: Sequence[str]) -> None:
        homes = await self._store.homes_of(accounts)
        versions = await self._store.versions_of(list(homes))
        for account, data in homes.items():
            try:
                home = home_from_dict(data)
            except (CodecError, KeyError, TypeError, ValueError) as exc:
                log.warning("stored state unreadable", account=account, error=str(exc))
                continue
            self._state.restore(home, versions.get(account, {}))

    async def _adopt_timers(self, accounts: list[str]) -> None:
        """The pending holds and debounces about these accounts, from their last owner."""
        if self._timers is None or not accounts:
            return
        pool = await self._store.pool()
        try:
            adopted = await fence.adopt_timers(pool, self.worker, accounts, WHEEL_KINDS)
        except psycopg.Error as exc:
            log.warning("timers not taken over", error=str(exc))
            return
        for timer_id, rule, kind, due_at, payload in adopted:
            self._timers.add(TimerRecord(timer_id, rule, TimerKind(kind), due_at, payload))
        if adopted:
            log.info("timers taken over", timers=len(adopted))

    async def _adopt_kept_alarms(self, accounts: list[str]) -> None:
        """The alarms roost pushed itself about these accounts, kept by their last owner
        (its clearing is this worker's to push now)."""
        if self._adopt_alarms is None or not accounts:
            return
        adopted = await self._adopt_alarms(accounts)
        if adopted:
            log.info("alarms roost pushed taken over", alarms=adopted)

    async def _serve(self, scope: anyio.CancelScope, accounts: Sequence[str]) -> None:
        assert self._supervise is not None
        with scope:
            async with anyio.create_task_group() as tg:
                for account in accounts:
                    tg.start_soon(self._supervise, self._providers[account])

    async def command(self, command: Command) -> Command | str:
        """Record the command under its group's epoch: the command to send, naming this
        worker and that epoch as its writer; or why it may not be sent."""
        group = self._group_of.get(command.account)
        epoch = self.epochs.get(group) if group else None
        if group is None or epoch is None:
            return "this worker does not own the account"
        pool = await self._store.pool()
        body = {"target": command.target, "action": command.action.describe()}
        try:
            if not await fence.command(
                pool, group, epoch, self.worker, command.id, command.account, body
            ):
                return "already sent by a previous owner"
        except fence.Fenced as exc:
            return str(exc)
        except psycopg.Error as exc:
            return f"the store did not answer: {exc}"
        return dataclasses.replace(command, writer=(self.worker, epoch))


class FencedProvider:
    """A provider whose writes only the owner of the account's group can make."""

    def __init__(self, inner: Provider, worker: ClusterWorker) -> None:
        self.account = inner.account
        self.write_limits: WriteLimits = write_limits(inner)
        self._inner = inner
        self._worker = worker

    async def run(self, sink: ChangeSink) -> None:
        await self._inner.run(sink)

    async def execute(self, command: Command) -> CommandResult:
        recorded = await self._worker.command(command)
        if isinstance(recorded, str):
            self._worker.commands_fenced += 1
            log.warning("command fenced", account=command.account, reason=recorded)
            return CommandResult.failure(FailureReason.INVALID, f"fenced: {recorded}")
        return await self._inner.execute(recorded)

    async def aclose(self) -> None:
        await self._inner.aclose()


def attach(
    settings: ClusterSettings,
    store: object,
    state: HomeState,
    providers: Sequence[Provider],
    add_provider: Callable[[Provider], None],
    password: str | None = None,
    submit: Submit | None = None,
    timers: Timers | None = None,
    bus: Bus | None = None,
    adopt_alarms: AdoptAlarms | None = None,
) -> ClusterWorker:
    """Make a runtime a fleet worker: its store fenced, its providers' writes fenced."""
    if not isinstance(store, PgStore):
        raise TypeError("a fleet worker needs the PostgreSQL store ([store] url)")
    worker = ClusterWorker(
        settings, store, state, providers, password, submit, timers, bus, adopt_alarms
    )
    for provider in providers:
        add_provider(worker.fenced(provider))
    return worker
