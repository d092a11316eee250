"""Matching: which rules an event triggers, and the triggers that need memory (holds,
threshold crossings).

Matching is synchronous and cheap: rules are indexed by event name and by device, so an
event only meets the triggers that could match it, and nothing is allocated for the rules
it does not match (an event no rule is indexed under costs one dictionary lookup).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from roost.core.clock import Clock
from roost.core.codec import event_to_json
from roost.core.events import Event
from roost.core.timers import TimerKind, TimerRecord, Timers
from roost.engine.rule_home import Services
from roost.engine.traces import Result, Trace
from roost.rules.author import Rule
from roost.rules.triggers import Trigger

if TYPE_CHECKING:
    from roost.engine.admission import RuleState

ANY_DEVICE = ""
_NONE: list[Entry] = []  # no entries (never changed: only ever returned for reading)


@dataclass
class Entry:
    """One event trigger of a rule, as the index holds it."""

    rule: Rule
    trigger: Trigger
    position: int  # the trigger's index in rule.triggers
    label: str
    stateful: bool  # a threshold or a hold: needs memory, off the fast path


Index = dict[str, dict[str, list[Entry]]]  # event name → device (or ANY_DEVICE) → entries


def build_index(rules: Iterable[Rule]) -> Index:
    index: dict[str, dict[str, list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for r in rules:
        for position, trigger in r.event_triggers():
            entry = Entry(r, trigger, position, trigger.describe(), trigger.stateful)
            index[trigger.event.name][trigger.device or ANY_DEVICE].append(entry)
    return {name: dict(by_device) for name, by_device in index.items()}


class Matching:
    """The engine's matching side (a part of `Engine`; the fields are the engine's)."""

    services: Services
    clock: Clock
    timers: Timers
    _index: Index
    _states: dict[str, RuleState]

    if TYPE_CHECKING:

        def _triggered(
            self,
            r: Rule,
            event: Event,
            label: str,
            trace: Trace | None = None,
            debounced: bool = False,
        ) -> bool: ...

        def _trace(
            self, r: Rule, label: str, event: Event, now: datetime | None = None
        ) -> Trace: ...

    def handle(self, event: Event) -> None:
        by_device = self._index.get(event.name)
        if by_device is None:
            return
        first: str | None = None  # a rule fires once per event, whichever triggers match
        fired: set[str] | None = None
        for entry in self._candidates(event, by_device):
            if entry.stateful:
                if not self._stateful(entry, event):
                    continue
            elif not entry.trigger.matches(event):
                continue
            name = entry.rule.name
            if first is None:
                first = name
            elif name == first or (fired is not None and name in fired):
                continue
            elif fired is None:
                fired = {name}
            else:
                fired.add(name)
            self._triggered(entry.rule, event, entry.label)

    def _candidates(self, event: Event, by_device: dict[str, list[Entry]]) -> list[Entry]:
        found = by_device.get(ANY_DEVICE, _NONE)
        device_id = event.device
        if device_id is None:
            return found
        exact = by_device.get(device_id)
        # Other keys may name this device by its name rather than its id.
        others = len(by_device) - (found is not _NONE) - (exact is not None)
        name = self.services.state.device_name(device_id) if others else None
        named = by_device.get(name) if name is not None else None
        if named is None:
            if exact is None or found is _NONE:
                return exact or found
            return [*found, *exact]
        return [*found, *(exact or ()), *named]

    def _stateful(self, entry: Entry, event: Event) -> bool:
        """Threshold crossings and holds. True when the rule should be triggered now."""
        trigger = entry.trigger
        if not trigger.about(event):
            return False
        inside = trigger.matches(event)
        subject = event.device or event.structure or event.account
        edge = inside
        if trigger.threshold is not None:
            edge = self._crossed(entry, subject, event, inside)
        if not trigger.hold_s:
            return edge
        timer_id = f"hold:{entry.rule.name}:{entry.position}:{subject}"
        if not inside:
            self._cancel_hold(entry.rule.name, timer_id, event)
        elif edge and self.timers.get(timer_id) is None:
            self._start_hold(entry, timer_id, event)
        return False

    def _crossed(self, entry: Entry, subject: str, event: Event, inside: bool) -> bool:
        threshold = entry.trigger.threshold
        assert threshold is not None
        armed = self._states[entry.rule.name].armed
        key = f"{entry.position}:{subject}"
        was_armed = armed.get(key)
        if was_armed is None:  # first sight: armed unless the old value was already inside
            was_armed = not threshold.inside(getattr(event, "old", None))
        if was_armed and inside:
            armed[key] = False
            return True
        armed[key] = was_armed or threshold.rearms(getattr(event, "new", None))
        return False

    def _start_hold(self, entry: Entry, timer_id: str, event: Event) -> None:
        due = self.clock.now() + timedelta(seconds=entry.trigger.hold_s)
        payload = {"trigger": entry.position, "label": entry.label, "event": event_to_json(event)}
        self.timers.add(TimerRecord(timer_id, entry.rule.name, TimerKind.HOLD, due, payload))
        trace = self._trace(entry.rule, entry.label, event)
        trace.end(Result.PENDING, f"holding until {due:%H:%M:%S} UTC")
        self._states[entry.rule.name].pending[timer_id] = trace

    def _cancel_hold(self, rule: str, timer_id: str, event: Event) -> None:
        if self.timers.cancel(timer_id) is None:
            return
        trace = self._states[rule].pending.pop(timer_id, None)
        if trace is not None:
            trace.end(Result.SKIPPED, f"hold cancelled: {_describe(event)}", self.clock.now())


def _describe(event: Event) -> str:
    text = event.name
    if hasattr(event, "new"):
        text += f" → {event.new}"
    return text
