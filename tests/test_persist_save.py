"""The persister's save of the homes changed in the last second (service/persist.py): made a
slice at a time on the event loop, so events go on being served during a save of many
homes; a home that changes during the save is saved by the next one; a save stopped half
way (a stop, a failing store) keeps every home it had not written for the next save or the
shutdown flush. A real `HomeState` and a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from roost.core.bus import Bus
from roost.core.clock import SystemClock
from roost.core.codec import home_from_dict
from roost.core.model import Change, Home, Structure, Thermostat
from roost.service import persist
from roost.service.persist import Persister
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.store.sqlite import Store

pytestmark = pytest.mark.anyio

HOMES = 5 * persist.SAVE_SLICE


def home(account: str) -> Home:
    structure = Structure(id="s", name="Home")
    thermostat = Thermostat(id="t", name="Den", structure_id="s", ambient_c=18.0)
    return Home(account, {"s": structure}, {"t": thermostat})


async def filled(tmp_path: Path) -> tuple[Store, HomeState, Persister]:
    store = Store.open(tmp_path)
    bus = Bus()
    state = HomeState(bus, EchoTracker(clock=SystemClock()))
    now = datetime.now(UTC)
    for i in range(HOMES):
        await state.snapshot(f"a{i}", home(f"a{i}"), now)
    await persist.Persister(store, state, bus, SystemClock())._save_dirty()  # the first save
    return store, state, Persister(store, state, bus, SystemClock())


async def saved_ambient(store: Store) -> dict[str, float | None]:
    """Each home's thermostat's reading as the store has it."""
    homes = await store.homes()
    return {a: getattr(home_from_dict(d).devices["t"], "ambient_c", None) for a, d in homes.items()}


async def change_all(state: HomeState, celsius: float) -> None:
    now = datetime.now(UTC)
    for i in range(HOMES):
        await state.patch(f"a{i}", [Change("t", "ambient_c", celsius)], now)


async def test_events_are_served_between_the_slices_of_a_save(tmp_path: Path) -> None:
    """The homes whose snapshot a save has not made yet when events come in between its
    slices are saved as those events left them (all snapshots made in one go: none)."""
    store, state, persister = await filled(tmp_path)
    try:
        await change_all(state, 19.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(persister._save_dirty)
            await anyio.lowlevel.checkpoint()  # the save's first slice is made
            await change_all(state, 23.0)
        saved = list((await saved_ambient(store)).values())
        assert saved.count(19.0) == persist.SAVE_SLICE
        assert saved.count(23.0) == HOMES - persist.SAVE_SLICE
        await persister._save_dirty()  # and every home changed meanwhile is dirty again
        assert set((await saved_ambient(store)).values()) == {23.0}
    finally:
        store.close()


async def test_a_home_changed_during_the_save_is_saved_by_the_next(tmp_path: Path) -> None:
    store, state, persister = await filled(tmp_path)
    try:
        await change_all(state, 19.0)
        async with anyio.create_task_group() as tg:
            tg.start_soon(persister._save_dirty)
            await anyio.lowlevel.checkpoint()  # the save's first slice is made
            await state.patch("a0", [Change("t", "ambient_c", 23.0)], datetime.now(UTC))
        assert "a0" in state.dirty
        await persister._save_dirty()
        assert (await saved_ambient(store))["a0"] == 23.0
    finally:
        store.close()


async def test_a_save_stopped_half_way_keeps_its_homes_dirty(tmp_path: Path) -> None:
    store, state, persister = await filled(tmp_path)
    try:
        await change_all(state, 19.0)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(persister._save_dirty)
                await anyio.lowlevel.checkpoint()
                scope.cancel()  # a stop, between two slices
        assert set((await saved_ambient(store)).values()) == {18.0}  # nothing written
        assert state.dirty == {f"a{i}" for i in range(HOMES)}  # all kept for the next save
        await persister.flush()
        assert set((await saved_ambient(store)).values()) == {19.0}
    finally:
        store.close()
