"""Matching: which rules an event triggers, and the triggers that need memory (holds,
threshold crossings).

Matching is synchronous and cheap: rules are indexed by event name and by device, so an
event only meets the triggers that could match it, and nothing is allocated for the rules
it does not match. An event no rule can match costs the lookup of its name and, when the
rules of that name all name their device by id, of its device (`Slot.matches_any`).

A trigger's `device` is a device's id or its name. A key that is some device's id is taken
as that id only: the device's name is looked up only while some key may be a name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
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
    filtered: bool  # filters to check (else every event it is indexed under matches it)


@dataclass
class Slot:
    """The triggers on one event name, by the device they name."""

    by_key: dict[str, list[Entry]]  # a device's id or name → entries
    anywhere: list[Entry]  # triggers that name no device
    # Keys not known to be a device's id: an event is also matched against these by its
    # device's name. Every key until the first event about a device (the rules are loaded
    # before the first snapshot); then the keys no device has as its id. A key stops being
    # a name when an event about a device with that id comes.
    names: set[str]
    ids_checked: bool = False
    # Every event of this name may match (a trigger on any device, or by a name); else only
    # an event whose device is a key of `by_key`.
    matches_any: bool = True
    # The keys with one trigger that matches every event it is indexed under (no filters,
    # no memory): while `matches_any` is False, such an event fires that rule and nothing
    # else, without `Matching.match` (most rules watch one device).
    single: dict[str, Entry] = field(default_factory=dict)

    def settle(self) -> None:
        self.matches_any = bool(self.anywhere or self.names)


Index = dict[str, Slot]  # event name → its triggers


def build_index(rules: Iterable[Rule]) -> Index:
    index: dict[str, dict[str, list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for r in rules:
        for position, trigger in r.event_triggers():
            label, stateful = trigger.describe(), trigger.stateful
            entry = Entry(r, trigger, position, label, stateful, bool(trigger.filters))
            index[trigger.event.name][trigger.device or ANY_DEVICE].append(entry)
    slots = {}
    for name, by_device in index.items():
        anywhere = by_device.pop(ANY_DEVICE, _NONE)
        single = {
            key: entries[0]
            for key, entries in by_device.items()
            if len(entries) == 1 and not entries[0].stateful and not entries[0].filtered
        }
        slots[name] = Slot(dict(by_device), anywhere, set(by_device), single=single)
        slots[name].settle()
    return slots


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

    def match(self, event: Event, slot: Slot) -> None:
        """Trigger the rules `event` fires, of those in `slot` (its name's). The caller
        has already left out an event that cannot match (not `matches_any` and its device
        no key)."""
        first: str | None = None  # a rule fires once per event, whichever triggers match
        fired: set[str] | None = None
        for entry in self._candidates(event, slot):
            if entry.stateful:
                if not self._stateful(entry, event):
                    continue
            elif entry.filtered and not entry.trigger.matches(event):
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

    def _candidates(self, event: Event, slot: Slot) -> list[Entry]:
        found = slot.anywhere
        device_id = event.device
        if device_id is None:
            return found
        exact = slot.by_key.get(device_id)
        named = self._named(slot, device_id, exact is not None) if slot.names else None
        if named is None:
            if exact is None or found is _NONE:
                return exact or found
            return [*found, *exact]
        return [*found, *(exact or ()), *named]

    def _named(self, slot: Slot, device_id: str, is_key: bool) -> list[Entry] | None:
        """The entries that name this device by its name (the keys that may be names are
        narrowed to the names first, as devices become known)."""
        names = slot.names
        if not slot.ids_checked:
            slot.ids_checked = True
            state = self.services.state
            names.difference_update([key for key in names if state.device(key) is not None])
        elif is_key:
            names.discard(device_id)  # the id of a device: no longer a name
        slot.settle()
        if not names:
            return None
        name = self.services.state.device_name(device_id)
        if name is None or name == device_id or name not in names:
            return None
        return slot.by_key[name]

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
