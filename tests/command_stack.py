"""A simulated Nest cloud and a whole daemon, tuned for command tests.

Like `simulator.stack.running_stack`, but the settings, the provider's write limits and
the dispatcher's retry timing can be set, so a test of back-off or rate limits takes
tenths of a second. Everything is real: rules, guards, dispatcher, provider, HTTP.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import anyio

from roost.commands.dispatch import Tuning
from roost.config.settings import Settings
from roost.core.commands import Action, Command
from roost.core.events import CommandOutcome, Event, Outcome
from roost.core.ids import new_id
from roost.core.inbox import Inbox
from roost.providers.base import WriteLimits
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.service.runtime import Runtime
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.nest_wwn import NestWwnSimulator, WriteRequest
from tests.provider_kit import make

ACCOUNT = "demo"
HOME = "structure-home"
LIVING = "thermostat-living-room"
BEDROOM = "thermostat-bedroom"
ALARM = "alarm-hallway"

UNLIMITED = WriteLimits()
FAST = Tuning(retry_initial_s=0.05, retry_max_s=0.4, echo_wait_s=2.0, echo_grace_s=0.0)


@dataclass
class CommandStack:
    home: SimHome
    cloud: NestWwnSimulator
    runtime: Runtime
    inbox: Inbox[Sequence[Event]]
    events: list[Event] = field(default_factory=list)

    def outcomes(self, command: str | None = None) -> list[CommandOutcome]:
        return [
            e
            for e in self.events
            if isinstance(e, CommandOutcome) and (command is None or e.command == command)
        ]

    def kinds(self, command: str) -> list[Outcome]:
        return [o.outcome for o in self.outcomes(command)]

    async def until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
        """Collect bus events until `done()` holds (it may also look at the simulator)."""
        with anyio.fail_after(timeout_s):
            while not done():
                with anyio.move_on_after(0.02):
                    self.events.extend(await self.inbox.receive())

    def answered(self) -> list[WriteRequest]:
        """The writes the simulator answered (not the 307 hops to the stream host)."""
        return [r for r in self.cloud.requests if r.status != 307]

    async def settled(self, command: str, timeout_s: float = 5.0) -> CommandOutcome:
        """Wait for the command's last outcome (anything after queued and sent)."""
        final = {Outcome.QUEUED, Outcome.SENT}
        await self.until(lambda: any(o not in final for o in self.kinds(command)), timeout_s)
        return next(o for o in self.outcomes(command) if o.outcome not in final)

    async def submit(
        self, target: str, action: Action, *, deadline_s: float = 30.0, rule: str = "test"
    ) -> CommandOutcome:
        """A command as a rule would make it, straight into the dispatcher."""
        now = self.runtime.clock.now()
        command = Command(
            id=new_id("c"),
            account=ACCOUNT,
            target=target,
            action=action,
            issued_at=now,
            deadline=now + timedelta(seconds=deadline_s),
            rule=rule,
            cause="test-event",
            correlation="test-chain",
        )
        return await self.runtime.dispatcher.submit(command)

    async def away(self) -> None:
        """Everyone leaves: the trigger the rule files in these tests use."""
        self.home.set_away(HOME, True)


def write_rules(directory: Path, rules: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


@asynccontextmanager
async def command_stack(
    tmp_path: Path,
    *,
    rules: dict[str, str] | None = None,
    home: SimHome | None = None,
    limits: WriteLimits = UNLIMITED,
    tuning: Tuning = FAST,
    configure: Callable[[Settings], None] | None = None,
) -> AsyncIterator[CommandStack]:
    home = home or SimHome.demo()
    async with nest_wwn.serve(home, keepalive_s=2.0) as cloud, anyio.create_task_group() as tg:
        settings = Settings()
        settings.daemon.rules_dir = write_rules(tmp_path / "rules", rules or {})
        settings.daemon.state_dir = tmp_path / "state"
        if configure is not None:
            configure(settings)
        provider = make(
            NestWwnProvider,
            "nest_wwn",
            ACCOUNT,
            api_url=cloud.url,
            token=cloud.token,
            keepalive_timeout_s=5.0,
            write_limits=limits,
        )
        runtime = Runtime(settings, providers=[provider])
        runtime.dispatcher.tuning = tuning
        runtime.load_rules()
        inbox = runtime.bus.subscribe("test")
        tg.start_soon(runtime.run)
        with anyio.fail_after(10):
            await runtime.state.wait_baseline(ACCOUNT)
        try:
            yield CommandStack(home, cloud, runtime, inbox)
        finally:
            tg.cancel_scope.cancel()
