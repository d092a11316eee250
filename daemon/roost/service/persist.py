"""What the store keeps of a running daemon: the last known state of every home, the rules'
state (cooldowns, rate windows) and pending timers, and the event journal. On start, the
last known state is restored so that changes made while roost was away come out of the
first snapshot as catch-up events."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import structlog

from roost.core.bus import Bus
from roost.core.clock import Clock
from roost.core.codec import CodecError, dumps, home_from_dict, home_to_dict
from roost.core.events import Event
from roost.core.model import Home
from roost.state.home_state import HomeState
from roost.store.interface import StateStore

log = structlog.get_logger(__name__)

SAVE_EVERY_S = 1.0
SAVE_SLICE = 20  # homes snapshotted between two turns of the event loop (~1 ms)
# The journal gathers what comes within this long into one write: one worker-thread trip and
# one transaction per ~50 ms, not per batch of events (an audit trail, not on the event path).
JOURNAL_GATHER_S = 0.05
JOURNAL_GATHER_MAX = 5_000  # events: a burst is written without waiting out the window
# While gathering, the inbox is emptied every this long rather than woken by every batch:
# at 1,000 changes/s a wake-up per batch was ~5 % of the daemon's CPU.
JOURNAL_LOOK_EVERY_S = 0.01
PRUNE_EVERY_S = 3600.0


class HomeKeeper:
    """Keeps the state's change identities and first pictures in the store (the state's
    `StateKeeper`)."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def reserve_versions(self, account: str, reserved: Sequence[tuple[str, int, Any]]) -> None:
        self._store.reserve_versions(account, reserved)

    async def save_home(self, account: str, home: Home) -> None:
        await self._store.home_put(account, home_to_dict(home), self._clock.now())


class Persister:
    def __init__(
        self,
        store: StateStore,
        state: HomeState,
        bus: Bus,
        clock: Clock,
        *,
        journal_max_age: timedelta = timedelta(days=30),
        journal_max_rows: int = 1_000_000,
        outbox_keep: timedelta = timedelta(days=7),
        rule_state: Callable[[], dict[str, dict[str, Any]]] | None = None,
    ) -> None:
        self._rule_state = rule_state
        self._rule_state_saved: str | None = None  # as last written: unchanged, no write
        self._store = store
        self._state = state
        self._clock = clock
        self._inbox = bus.subscribe("journal", buffer=4096)
        self._max_age = journal_max_age
        self._max_rows = journal_max_rows
        self._outbox_keep = outbox_keep
        self._keeper = HomeKeeper(store, clock)

    async def restore(self) -> int:
        """Load the last known state of every home into `state`. Returns how many."""
        restored = 0
        for account, data in (await self._store.homes()).items():
            try:
                home = home_from_dict(data)
                self._state.restore(home, await self._store.versions(account))
            except (CodecError, KeyError, TypeError, ValueError) as exc:
                log.warning(
                    "stored state unreadable; starting fresh", account=account, error=str(exc)
                )
                continue
            restored += 1
        return restored

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._journal)
            tg.start_soon(self._save_homes)
            tg.start_soon(self._prune)

    async def flush(self) -> None:
        """Write what is pending now (on shutdown)."""
        await self._save_dirty()
        await self._store.flush()

    async def _journal(self) -> None:
        async with self._inbox:
            async for batch in self._inbox:
                # Shielded: a stop waits out the window and writes what was taken off the
                # bus, rather than losing it.
                with anyio.CancelScope(shield=True):
                    # Turned into rows and written by the store's thread, not on the event
                    # loop (events are immutable).
                    await self._store.journal_events(await self._gather(list(batch)))

    async def _gather(self, events: list[Event]) -> list[Event]:
        """`events` and whatever else arrives within the window (or up to the cap)."""
        until = anyio.current_time() + JOURNAL_GATHER_S
        while True:
            for batch in self._inbox.take_all():
                events.extend(batch)
            left = until - anyio.current_time()
            if len(events) >= JOURNAL_GATHER_MAX or left <= 0:
                return events
            await anyio.sleep(min(JOURNAL_LOOK_EVERY_S, left))

    async def _save_homes(self) -> None:
        while True:
            await self._clock.sleep(SAVE_EVERY_S)
            try:
                await self._save_dirty()
            except Exception as exc:  # (psycopg may raise this for a write a stop cancelled)
                # the homes stay dirty: the next save (or the flush at a stop) writes them
                log.warning("saving the homes failed; retried", error=str(exc))

    async def _save_dirty(self) -> None:
        if self._rule_state is not None:
            states = self._rule_state()
            text = dumps(states)
            if text != self._rule_state_saved:  # an idle daemon writes nothing each second
                await self._store.rule_state_put(states)
                self._rule_state_saved = text
        dirty, self._state.dirty = self._state.dirty, set()
        if not dirty:
            return
        try:
            await self._store.homes_put(await self._snapshots(dirty), self._clock.now())
        except BaseException:  # a stop or a failed write: the next save (or flush) has them
            self._state.dirty |= dirty
            raise

    async def _snapshots(self, accounts: set[str]) -> list[tuple[str, str]]:
        """Each home's snapshot as JSON text, made on the event loop `SAVE_SLICE` homes at a
        time, events served between slices. (Made in one go, or by the store's thread, which
        hands the GIL back only every 5 ms, a save of 200 homes held the loop 10-23 ms each
        second: bench/save_stall.py.) A home that changes meanwhile is dirty again."""
        rows: list[tuple[str, str]] = []
        for n, account in enumerate(accounts, start=1):
            rows.append((account, dumps(home_to_dict(self._state.home(account)))))
            if n % SAVE_SLICE == 0:
                await anyio.lowlevel.checkpoint()
        return rows

    async def _save(self, account: str) -> None:
        await self._keeper.save_home(account, self._state.home(account))

    async def _prune(self) -> None:
        while True:
            gone = await self._store.journal_prune(
                self._clock.now() - self._max_age, self._max_rows
            )
            if gone:
                log.info("journal pruned", entries=gone)
            sent = await self._store.outbox_prune(self._clock.now() - self._outbox_keep)
            if sent:
                log.info("outbox pruned", delivered=sent)
            await self._clock.sleep(PRUNE_EVERY_S)
