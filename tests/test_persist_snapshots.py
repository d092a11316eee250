"""A save of the dirty homes: each home's snapshot is made by the store's thread as SQLite
writes it, not on the event loop (with thousands of accounts a second's dirty homes held
the loop for all of them at once), and what is read back is what was saved."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from roost.core.bus import Bus
from roost.core.clock import SystemClock
from roost.core.codec import home_from_dict, home_to_dict
from roost.core.model import Home, Structure, Thermostat
from roost.service.persist import Persister, Snapshots
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from roost.store.interface import StateStore
from roost.store.sqlite import Store

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class _Watched(Mapping[str, Structure]):
    """A home's structures that note the thread reading them."""

    def __init__(self, structures: dict[str, Structure], seen: set[int]) -> None:
        self._structures, self._seen = structures, seen

    def __getitem__(self, key: str) -> Structure:
        return self._structures[key]

    def __iter__(self) -> Iterator[str]:
        self._seen.add(threading.get_ident())
        return iter(self._structures)

    def __len__(self) -> int:
        return len(self._structures)


def _home(account: str, humidity: float) -> Home:
    structure = Structure(id="s", name="Home")
    thermostat = Thermostat(id="t", name="Hall", structure_id="s", humidity=humidity)
    return Home(account, {"s": structure}, {"t": thermostat})


async def test_snapshots_are_made_when_read_and_equal_the_homes_dicts() -> None:
    homes = [("a", _home("a", 40.0)), ("b", _home("b", 41.0))]
    snapshots = Snapshots(homes)
    assert len(snapshots) == 2
    assert list(snapshots) == [(a, home_to_dict(h)) for a, h in homes]
    assert list(snapshots[1:]) == [("b", home_to_dict(homes[1][1]))]


async def test_sqlite_makes_each_snapshot_in_its_own_thread(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        seen: set[int] = set()
        home = _home("a", 40.0)
        watched = Home("a", _Watched(dict(home.structures), seen), home.devices)
        await store.homes_put(Snapshots([("a", watched), ("b", _home("b", 41.0))]), NOW)
        assert seen
        assert threading.get_ident() not in seen  # read by the store's thread only
        saved = {a: home_from_dict(d) for a, d in (await store.homes()).items()}
        assert saved == {"a": home, "b": _home("b", 41.0)}
    finally:
        await store.aclose()


class _Passing:
    """The store, noting what a save hands it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.handed: list[Sequence[tuple[str, dict[str, Any]]]] = []

    async def homes_put(self, homes: Sequence[tuple[str, dict[str, Any]]], at: datetime) -> None:
        self.handed.append(homes)
        await self.store.homes_put(homes, at)


async def test_the_dirty_homes_saved_are_the_homes_held(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    bus = Bus()
    state = HomeState(bus, EchoTracker(clock=SystemClock()))
    passing = _Passing(store)
    persister = Persister(cast(StateStore, passing), state, bus, SystemClock())
    try:
        for n, account in enumerate(("a", "b", "c")):
            await state.snapshot(account, _home(account, 40.0 + n), NOW)
        state.dirty = {"a", "c"}
        await persister._save_dirty()
        assert state.dirty == set()
        (handed,) = passing.handed
        assert isinstance(handed, Snapshots)  # homes, made into snapshots by the store
        saved = {a: home_from_dict(d) for a, d in (await store.homes()).items()}
        assert saved == {"a": state.home("a"), "c": state.home("c")}
    finally:
        await store.aclose()
