"""A `ChangeSink` that records what a provider reports, for the provider tests.

It implements the interface the provider talks to (a test double of a seam, not a mock of a
roost class); `wait_for` wakes on every report instead of polling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import anyio

from roost.core.events import ConnectionState, DeviceEvent
from roost.core.model import Change, Home
from roost.providers.health import PayloadHealth

WAIT_S = 5.0


@dataclass
class RecordingSink:
    snapshots: list[Home] = field(default_factory=list)
    patches: list[Sequence[Change]] = field(default_factory=list)
    device_events: list[DeviceEvent] = field(default_factory=list)
    statuses: list[tuple[ConnectionState, str]] = field(default_factory=list)
    health: dict[str, PayloadHealth] = field(default_factory=dict)
    _pictures: list[Home | Sequence[Change]] = field(default_factory=list)  # both, in order
    _news: anyio.Event = field(default_factory=anyio.Event)

    async def snapshot(self, account: str, home: Home, at: datetime) -> None:
        self.snapshots.append(home)
        self._pictures.append(home)
        self._wake()

    async def patch(self, account: str, changes: Sequence[Change], at: datetime) -> None:
        self.patches.append(changes)
        self._pictures.append(changes)
        self._wake()

    async def device_event(self, account: str, event: DeviceEvent) -> None:
        self.device_events.append(event)
        self._wake()

    async def status(self, account: str, state: ConnectionState, detail: str = "") -> None:
        self.statuses.append((state, detail))
        self._wake()

    def payload_health(self, account: str) -> PayloadHealth:
        return self.health.setdefault(account, PayloadHealth(account))

    def home(self, account: str) -> Home:
        return Home(account, {}, {})  # nothing restored

    def _wake(self) -> None:
        self._news.set()
        self._news = anyio.Event()

    async def wait_for(self, condition: Callable[[], bool], limit_s: float = WAIT_S) -> None:
        with anyio.fail_after(limit_s):
            while not condition():
                with anyio.move_on_after(0.05):
                    await self._news.wait()

    @property
    def states(self) -> list[ConnectionState]:
        return [state for state, _ in self.statuses]

    @property
    def latest(self) -> Home:
        """The last snapshot with the patches since applied: the picture a state holds."""
        last = max(i for i, p in enumerate(self._pictures) if isinstance(p, Home))
        home = self._pictures[last]
        assert isinstance(home, Home)
        devices, structures = dict(home.devices), dict(home.structures)
        for patch in self._pictures[last + 1 :]:
            assert not isinstance(patch, Home)
            for c in patch:
                if c.target in devices:
                    devices[c.target] = replace(devices[c.target], **{c.attribute: c.value})
                else:
                    structures[c.target] = replace(structures[c.target], **{c.attribute: c.value})
        return Home(home.account, structures, devices)

    def changes(self, target: str, attribute: str) -> list[Any]:
        """Every value a patch gave this attribute, in order."""
        return [
            c.value
            for batch in self.patches
            for c in batch
            if c.target == target and c.attribute == attribute
        ]

    def events(self, cls: type[DeviceEvent]) -> list[DeviceEvent]:
        return [e for e in self.device_events if type(e) is cls]
