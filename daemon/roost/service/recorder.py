"""Recording the daemon's events to a JSON-lines file, for `roost replay`.

Each line is one JSON object: `{"kind": "home", "home": {...}}` with the whole picture
of an account once its first snapshot is in (and again after each reconnect), then
`{"kind": "event", "event": {...}}` for every event on the bus, in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.to_thread
import structlog

from roost.core.bus import Bus
from roost.core.codec import dumps, event_to_json, home_to_dict
from roost.core.events import AccountStatus, ConnectionState, Event
from roost.state.home_state import HomeState

log = structlog.get_logger(__name__)


def home_line(state: HomeState, account: str) -> dict[str, Any]:
    return {"kind": "home", "home": home_to_dict(state.home(account))}


def event_line(event: Event) -> dict[str, Any]:
    return {"kind": "event", "event": event_to_json(event)}


class EventRecorder:
    def __init__(self, path: Path, state: HomeState, bus: Bus) -> None:
        self.path = path
        self._state = state
        self._inbox = bus.subscribe("recorder", buffer=4096)
        self._accounts: list[str] = []
        self._out: TextIO | None = None
        self._reopen = False

    def reopen(self) -> None:
        """After logrotate moved the file away (SIGHUP): the next batch goes to a new file
        at `path`, which starts with each home as it is, so it replays on its own."""
        self._reopen = True

    async def run(self, accounts: Sequence[str]) -> None:
        self._accounts = list(accounts)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = self.path.open("a", encoding="utf-8")
        try:
            async with anyio.create_task_group() as tg, self._inbox:
                for account in accounts:
                    tg.start_soon(self._home_when_ready, account)
                async for first in self._inbox:
                    if self._reopen:
                        await self._switch_file()
                    # Every waiting batch in one write (one worker-thread trip), each
                    # reconnect's home line right after its batch, as before.
                    await self._write(self._lines((first, *self._inbox.take_all())))
        finally:
            self._out.close()

    async def _switch_file(self) -> None:
        self._reopen = False

        def switch() -> None:
            assert self._out is not None
            old, self._out = self._out, self.path.open("a", encoding="utf-8")
            old.close()

        await anyio.to_thread.run_sync(switch)
        ready = [a for a in self._accounts if self._state.account(a).baseline]
        await self._write([home_line(self._state, account) for account in ready])
        log.info("event recording reopened", path=str(self.path))

    async def _home_when_ready(self, account: str) -> None:
        await self._state.wait_baseline(account)
        await self._write([home_line(self._state, account)])

    def _lines(self, batches: Sequence[Sequence[Event]]) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for batch in batches:
            lines.extend(event_line(e) for e in batch)
            for event in batch:
                if isinstance(event, AccountStatus) and event.state is ConnectionState.CONNECTED:
                    lines.append(home_line(self._state, event.account))
        return lines

    async def _write(self, lines: list[dict[str, Any]]) -> None:
        text = "".join(dumps(line, default=str) + "\n" for line in lines)
        out = self._out
        assert out is not None

        def write() -> None:
            out.write(text)
            out.flush()

        # Shielded: lines taken from the inbox are written even when a stop comes while the
        # worker thread is being started (its first checkpoint would drop them).
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(write)
