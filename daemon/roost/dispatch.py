"""Command dispatch: guards first, then the vendor, with every outcome on the bus.

`submit` is the only way a rule reaches a device. It checks the guards against the current
state, records a dry run, or queues the command for its account's worker, which sends it
through the provider, retries what is worth retrying until the command's deadline, and
publishes sent / failed / dropped. Confirmation comes from the device's echo (see `echo`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

import anyio
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from roost.bus import Bus
from roost.commands import Command, CommandResult, FailureReason, satisfies
from roost.echo import EchoTracker
from roost.events import CommandOutcome, Context, Outcome
from roost.guards import Limits, WriteBudget, check
from roost.ids import new_id
from roost.model import Device, Structure
from roost.providers.base import Provider
from roost.state import HomeState

log = structlog.get_logger(__name__)

QUEUE_SIZE = 256


class Dispatcher:
    def __init__(
        self,
        state: HomeState,
        bus: Bus,
        echoes: EchoTracker,
        limits: Limits,
        *,
        dry_run: bool = False,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 60.0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._state = state
        self._bus = bus
        self._echoes = echoes
        self._limits = limits
        self.dry_run = dry_run
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._now = now or (lambda: datetime.now(UTC))
        self._budget = WriteBudget()
        self._providers: dict[str, Provider] = {}
        self._queues: dict[str, MemoryObjectSendStream[Command]] = {}
        self._inboxes: dict[str, MemoryObjectReceiveStream[Command]] = {}

    def add_provider(self, provider: Provider) -> None:
        send, receive = anyio.create_memory_object_stream[Command](QUEUE_SIZE)
        self._providers[provider.account] = provider
        self._queues[provider.account] = send
        self._inboxes[provider.account] = receive

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for account, inbox in self._inboxes.items():
                tg.start_soon(self._worker, account, inbox)

    # ---- submission ----------------------------------------------------------------

    async def submit(self, command: Command) -> CommandOutcome:
        target = self._state.find(command.target)
        entity = target[1] if target else None
        refusal = check(
            command,
            entity,
            self._neighbours(entity),
            self._limits,
            self._budget.count(command.target),
        )
        if refusal is not None:
            log.warning(
                "command refused",
                command=command.describe(),
                rule=command.rule,
                guard=refusal.guard,
                reason=refusal.reason,
            )
            return await self._publish(command, Outcome.REFUSED, refusal.reason, refusal.guard)
        if command.dry_run or self.dry_run:
            log.info("dry run: command not sent", command=command.describe(), rule=command.rule)
            return await self._publish(command, Outcome.DRY_RUN, "dry run")
        queue = self._queues.get(command.account)
        if queue is None:
            return await self._publish(command, Outcome.FAILED, "no provider for the account")
        try:
            queue.send_nowait(command)
        except anyio.WouldBlock:
            return await self._publish(command, Outcome.DROPPED, "dispatch queue full")
        self._budget.record(command.target)
        return self._outcome(command, Outcome.SENT, "queued")

    def _neighbours(self, entity: Structure | Device | None) -> list[Device]:
        if entity is None:
            return []
        structure = entity.id if isinstance(entity, Structure) else entity.structure_id
        return [d for d in self._state.devices() if d.structure_id == structure]

    # ---- delivery ------------------------------------------------------------------

    async def _worker(self, account: str, inbox: MemoryObjectReceiveStream[Command]) -> None:
        provider = self._providers[account]
        async with inbox:
            async for command in inbox:
                await self._deliver(provider, command)

    async def _deliver(self, provider: Provider, command: Command) -> None:
        attempt = 0
        while True:
            if self._now() >= command.deadline:
                await self._publish(command, Outcome.DROPPED, "deadline passed before delivery")
                return
            self._echoes.expect(command)
            if attempt == 0:
                await self._publish(command, Outcome.SENT, "")
            result = await self._execute(provider, command)
            if result.ok:
                await self._confirm_if_already_so(command)
                return
            self._echoes.forget(command)
            attempt += 1
            delay = self._retry_delay(result, attempt)
            if delay is None or self._now().timestamp() + delay >= command.deadline.timestamp():
                reason = (
                    f"{result.reason}: {result.detail}" if result.detail else str(result.reason)
                )
                log.warning("command failed", command=command.describe(), reason=reason)
                await self._publish(command, Outcome.FAILED, reason)
                return
            log.info("command will be retried", command=command.describe(), delay_s=delay)
            await anyio.sleep(delay)

    async def _execute(self, provider: Provider, command: Command) -> CommandResult:
        try:
            return await provider.execute(command)
        except Exception as exc:  # a provider must not raise; if one does, it is a failure
            log.exception("provider raised on execute", command=command.describe())
            return CommandResult.failure(FailureReason.NETWORK, type(exc).__name__)

    def _retry_delay(self, result: CommandResult, attempt: int) -> float | None:
        if result.reason is None or not result.reason.retryable:
            return None
        if result.retry_after_s is not None:
            return result.retry_after_s
        cap = min(self._retry_max_s, self._retry_initial_s * 2 ** (attempt - 1))
        return random.uniform(cap / 2, cap)

    async def _confirm_if_already_so(self, command: Command) -> None:
        """A write that changes nothing produces no echo: confirm it from the state."""
        if not self._echoes.is_pending(command):
            return
        found = self._state.find(command.target)
        expected = command.action.expected()
        if found and all(satisfies(getattr(found[1], k, None), v) for k, v in expected.items()):
            self._echoes.forget(command)
            await self._publish(command, Outcome.CONFIRMED, "already so", latency_s=0.0)

    # ---- outcomes ------------------------------------------------------------------

    def _outcome(
        self,
        command: Command,
        outcome: Outcome,
        reason: str = "",
        guard: str | None = None,
        latency_s: float | None = None,
    ) -> CommandOutcome:
        found = self._state.find(command.target)
        structure = None
        if found is not None:
            entity = found[1]
            structure = entity.id if isinstance(entity, Structure) else entity.structure_id
        return CommandOutcome(
            id=new_id(),
            at=self._now(),
            account=command.account,
            structure=structure,
            device=command.target,
            context=Context(command.id, command.correlation, command.rule, depth=command.depth),
            command=command.id,
            action=command.action.describe(),
            outcome=outcome,
            rule=command.rule,
            reason=reason,
            guard=guard,
            latency_s=latency_s,
        )

    async def _publish(
        self,
        command: Command,
        outcome: Outcome,
        reason: str = "",
        guard: str | None = None,
        latency_s: float | None = None,
    ) -> CommandOutcome:
        event = self._outcome(command, outcome, reason, guard, latency_s)
        await self._bus.publish([event])
        return event
