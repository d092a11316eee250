"""The seam between a vendor and the rest of roost.

A provider holds one account's subscription and performs its writes. It reports what it
sees only through a `ChangeSink` (implemented by `state`), and answers every write with a
`CommandResult`: vendor errors become typed failures, never raw exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from roost.commands import Command, CommandResult
from roost.events import ConnectionState, DeviceEvent
from roost.model import Change, Home


class ChangeSink(Protocol):
    async def snapshot(self, account: str, home: Home, at: datetime) -> None:
        """The full picture (on connect, after every reconnect, or on a full put)."""

    async def patch(self, account: str, changes: Sequence[Change], at: datetime) -> None:
        """Some attributes changed."""

    async def device_event(self, account: str, event: DeviceEvent) -> None:
        """A momentary event: motion, person, sound, chime."""

    async def status(self, account: str, state: ConnectionState, detail: str = "") -> None:
        """The subscription connected, dropped, or lost its authorization."""


class Provider(Protocol):
    """One instance per account."""

    account: str

    async def run(self, sink: ChangeSink) -> None:
        """Hold the subscription until cancelled: connect, stream, reconnect with back-off."""

    async def execute(self, command: Command) -> CommandResult:
        """One vendor write."""

    async def aclose(self) -> None:
        """Release connections; called once when the daemon stops."""
