"""The rule engine: trigger index, filters, echo protection, cooldown, isolated runs.

Matching is synchronous and cheap: rules are indexed by event name and by device, so an
event only meets the triggers that could match it. Each firing rule runs as its own task
with a timeout; an exception or a hang is reported with the rule's name and never stalls
the bus or the other rules.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import anyio
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from roost.api import RuleHome, Services
from roost.events import Event
from roost.rules import Rule, Trigger

log = structlog.get_logger(__name__)

_ANY_DEVICE = ""


@dataclass
class RuleStats:
    fired: int = 0
    skipped_cooldown: int = 0
    skipped_condition: int = 0
    skipped_echo: int = 0
    errors: int = 0
    timeouts: int = 0
    last_run: float | None = None


@dataclass
class _Entry:
    rule: Rule
    trigger: Trigger


@dataclass
class Engine:
    services: Services
    timeout_s: float = 30.0
    rules: dict[str, Rule] = field(default_factory=dict)
    stats: dict[str, RuleStats] = field(default_factory=dict)
    _index: dict[str, dict[str, list[_Entry]]] = field(default_factory=dict)
    _tg: TaskGroup | None = None

    def load(self, rules: Iterable[Rule]) -> None:
        """Replace the rule set. Statistics of rules that keep their name are kept."""
        self.rules = {r.name: r for r in rules}
        self.stats = {name: self.stats.get(name, RuleStats()) for name in self.rules}
        index: dict[str, dict[str, list[_Entry]]] = defaultdict(lambda: defaultdict(list))
        for r in self.rules.values():
            for trigger in r.triggers:
                index[trigger.event.name][trigger.device or _ANY_DEVICE].append(_Entry(r, trigger))
        self._index = {name: dict(by_device) for name, by_device in index.items()}

    async def run(self, inbox: MemoryObjectReceiveStream[Sequence[Event]]) -> None:
        async with anyio.create_task_group() as tg, inbox:
            self._tg = tg
            try:
                async for batch in inbox:
                    for event in batch:
                        self.handle(event)
            finally:
                self._tg = None

    # ---- matching (the hot path) ---------------------------------------------------

    def handle(self, event: Event) -> None:
        by_device = self._index.get(event.name)
        if by_device is None:
            return
        fired: set[str] = set()
        for entry in self._candidates(event, by_device):
            r = entry.rule
            if r.name not in fired and entry.trigger.matches(event) and self._admit(r, event):
                fired.add(r.name)
                self._start(r, event)

    def _candidates(self, event: Event, by_device: dict[str, list[_Entry]]) -> list[_Entry]:
        found = by_device.get(_ANY_DEVICE, [])
        if event.device is None:
            return found
        exact = by_device.get(event.device)
        device = self.services.state.device(event.device) if len(by_device) > 1 else None
        named = by_device.get(device.name) if device is not None else None
        if exact is None and named is None:
            return found
        return [*found, *(exact or ()), *(named or ())]

    def _admit(self, r: Rule, event: Event) -> bool:
        stats = self.stats[r.name]
        if event.context.rule == r.name and not r.react_to_own_echo:
            stats.skipped_echo += 1
            return False
        now = time.monotonic()
        if r.cooldown_s and stats.last_run is not None and now - stats.last_run < r.cooldown_s:
            stats.skipped_cooldown += 1
            log.debug("rule in cooldown", rule=r.name)
            return False
        if r.condition is not None and not self._condition(r, event):
            stats.skipped_condition += 1
            return False
        stats.last_run = now
        stats.fired += 1
        return True

    def _condition(self, r: Rule, event: Event) -> bool:
        assert r.condition is not None
        try:
            return bool(r.condition(event, RuleHome(self.services, r.name, event, r.dry_run)))
        except Exception:
            self.stats[r.name].errors += 1
            log.exception("rule condition raised", rule=r.name, source=r.source)
            return False

    # ---- running -------------------------------------------------------------------

    def _start(self, r: Rule, event: Event) -> None:
        if self._tg is None:
            raise RuntimeError("the engine is not running")
        self._tg.start_soon(self.execute, r, event, name=f"rule {r.name}")

    async def execute(self, r: Rule, event: Event) -> None:
        """One isolated run of a rule for an event."""
        home = RuleHome(self.services, r.name, event, r.dry_run)
        timeout = r.timeout_s if r.timeout_s is not None else self.timeout_s
        try:
            with anyio.fail_after(timeout):
                await r.body(event, home)
        except TimeoutError:
            self.stats[r.name].timeouts += 1
            log.error("rule timed out", rule=r.name, source=r.source, timeout_s=timeout)
        except Exception:
            self.stats[r.name].errors += 1
            log.exception("rule raised", rule=r.name, source=r.source, trigger=event.name)
