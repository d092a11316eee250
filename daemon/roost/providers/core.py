"""What every provider does the same way: hold the subscription, and the shape of a write.

A vendor's provider subclasses `ProviderCore` and supplies the session (open and read one
subscription, see providers/supervisor.py) and the four steps of a write: find the target,
encode the action, send it, and name what was sent for the log. The template maps every
failure of those steps the same way: no target is NOT_FOUND, an `EncodeError` INVALID, a
provider error or a transport failure by providers/http.py.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import httpx
import structlog

from roost.commands import Command, CommandResult, FailureReason
from roost.errors import EncodeError, ProviderError
from roost.events import ConnectionState
from roost.model import Device, Home, Structure
from roost.providers.base import ChangeSink, HttpClientOwner
from roost.providers.http import result_of, transport_failure
from roost.providers.supervisor import Supervisor

log = structlog.get_logger(__name__)

TargetT = TypeVar("TargetT")
WriteT = TypeVar("WriteT")


class ProviderCore(HttpClientOwner, Generic[TargetT, WriteT]):
    account: str
    home: Home | None
    supervisor: Supervisor

    def _supervise(self, account: str, backoff_initial_s: float, backoff_max_s: float) -> None:
        self.account = account
        self.home = None
        self.supervisor = Supervisor(
            account, backoff_initial_s=backoff_initial_s, backoff_max_s=backoff_max_s
        )

    @property
    def state(self) -> ConnectionState | None:
        return self.supervisor.state

    async def run(self, sink: ChangeSink) -> None:
        """Hold the subscription until cancelled; returns only when the credentials fail."""
        await self.supervisor.run(sink, lambda: self._subscription(sink))

    async def _subscription(self, sink: ChangeSink) -> None:
        """Open one subscription and read it until it ends (by raising a `ProviderError`)."""
        raise NotImplementedError

    # --- writes ----------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResult:
        """One write: find the target, encode the action, send it, map the outcome."""
        target = self._target(command.target)
        if target is None:
            return self._no_target(command.target)
        try:
            write = self._encode(command, target)
        except EncodeError as exc:
            return CommandResult.failure(FailureReason.INVALID, str(exc))
        try:
            result = await self._send(write, command)
        except ProviderError as exc:
            result = result_of(exc)
        except httpx.RequestError as exc:
            result = transport_failure(exc)
        log.info(
            "provider.write",
            account=self.account,
            command=command.id,
            **self._describe(write),
            ok=result.ok,
            reason=str(result.reason) if result.reason else None,
            detail=result.detail,
        )
        return result

    def _target(self, target_id: str) -> TargetT | None:
        raise NotImplementedError

    def _no_target(self, target_id: str) -> CommandResult:
        return CommandResult.failure(FailureReason.NOT_FOUND, f"unknown target {target_id}")

    def _encode(self, command: Command, target: TargetT) -> WriteT:
        raise NotImplementedError

    async def _send(self, write: WriteT, command: Command) -> CommandResult:
        raise NotImplementedError

    def _describe(self, write: WriteT) -> dict[str, Any]:
        """What the log says was sent."""
        return {}


def find_in_home(home: Home | None, target_id: str) -> Structure | Device | None:
    if home is None:
        return None
    return home.devices.get(target_id) or home.structures.get(target_id)
