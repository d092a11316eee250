"""`getevents` → what roost reports, each event exactly once, across restarts.

Netatmo keeps a home's recent events (newest first). Alarm events set a smoke or CO
alarm's state (`smoke` sub_type 0 cleared / 1 detected; `co_detected` 0 ok / 1 pre-alarm /
2 alarm; PROTOCOLS.md §4.5); camera events become `Motion`, `Person` or `Chime`; the rest
(connections, boots, tags, person_home…) show up in `homestatus` or are not modelled.

`Timeline` remembers, in the `ProviderMemory`, the ids of the events already reported and
the alarm states they left. The first read of a home (nothing remembered) is a baseline:
its events happened before roost was watching, so they only set the alarm states. After
that an unseen id is news, reported in time order and remembered right after.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from roost.core.events import Chime, Context, DeviceEvent, Motion, Person
from roost.core.ids import new_id
from roost.core.model import AlarmState
from roost.providers.base import ProviderMemory
from roost.providers.netatmo.normalize import AlarmStates

MEMORY_KEY = "netatmo.events.{home}"
REMEMBERED_IDS = 500  # far more than one getevents answer holds
_LATEST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last time datetime can hold

SMOKE_STATES = {0: AlarmState.OK, 1: AlarmState.EMERGENCY}
CO_STATES = {0: AlarmState.OK, 1: AlarmState.WARNING, 2: AlarmState.EMERGENCY}
# An alarm event's type → the attribute it sets and its sub_types' meaning.
ALARM_KINDS = {"smoke": ("smoke", SMOKE_STATES), "co_detected": ("co", CO_STATES)}
CAMERA_EVENTS: Mapping[str, type[DeviceEvent]] = {
    "movement": Motion,
    "person": Person,
    "human": Person,
    "animal": Motion,
    "vehicle": Motion,
    "incoming_call": Chime,
}


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """An alarm event: the module and the state it now reports (`smoke` or `co`)."""

    module: str
    attribute: str
    state: AlarmState


def interpret(raw: Mapping[str, Any]) -> AlarmChange | type[DeviceEvent] | None:
    """What one getevents entry means for roost, or None if nothing."""
    kind, module = raw.get("type"), raw.get("module_id") or raw.get("device_id")
    if not isinstance(kind, str) or not isinstance(module, str):
        return None
    kind = kind.lower()
    if kind in ALARM_KINDS:
        attribute, states = ALARM_KINDS[kind]
        return AlarmChange(module, attribute, _alarm_state(raw.get("sub_type"), states))
    if kind == "outdoor":  # one Presence event with what its clips saw
        clips = raw.get("subevents")
        clips = clips if isinstance(clips, list) else []
        seen = [s.get("type") for s in clips if isinstance(s, Mapping)]
        return Person if "human" in seen else Motion
    return CAMERA_EVENTS.get(kind)


def _alarm_state(sub_type: Any, states: Mapping[int, AlarmState]) -> AlarmState:
    """The state a smoke or CO event's sub_type reports (a number, or its digits). One
    roost cannot read is an emergency, the cautious side: the alarm spoke (fail open)."""
    if isinstance(sub_type, str) and sub_type.strip().isascii() and sub_type.strip().isdecimal():
        sub_type = int(sub_type)
    if isinstance(sub_type, int) and not isinstance(sub_type, bool) and sub_type in states:
        return states[sub_type]
    return AlarmState.EMERGENCY


def events_of(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The usable entries of a getevents body (`body.home.events`), oldest first."""
    home = body.get("home")
    raw = home.get("events") if isinstance(home, Mapping) else None
    if not isinstance(raw, list):
        return []
    usable = [
        e
        for e in raw
        if isinstance(e, Mapping) and isinstance(e.get("id"), str) and _time(e) is not None
    ]
    return sorted(usable, key=lambda e: (_time(e) or 0, e["id"]))


class Timeline:
    """One home's reported events and alarm states, kept in the `ProviderMemory`."""

    def __init__(self, memory: ProviderMemory, account: str, home_id: str) -> None:
        self._memory = memory
        self._account = account
        self._key = MEMORY_KEY.format(home=home_id)
        self.home_id = home_id
        self.alarms: dict[str, AlarmStates] = {}
        self._seen: list[str] = []
        self._seen_set: set[str] = set()
        self._loaded = False
        self._baseline = False

    async def load(self) -> None:
        """Read what was remembered (once); nothing remembered makes the next read a baseline."""
        if self._loaded:
            return
        stored = await self._memory.get(self._account, self._key)
        self._loaded = True
        if stored is None:
            self._baseline = True
            return
        data = json.loads(stored)
        self._seen = [i for i in data.get("seen", []) if isinstance(i, str)]
        self._seen_set = set(self._seen)
        self.alarms = {
            module: AlarmStates(AlarmState(s.get("smoke", "ok")), AlarmState(s.get("co", "ok")))
            for module, s in data.get("alarms", {}).items()
        }

    async def news(self, entries: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The entries not reported yet, oldest first. A baseline read reports none: it
        only takes the alarm states and remembers every id."""
        fresh = [e for e in entries if e["id"] not in self._seen_set]
        if not self._baseline:
            return fresh
        self._baseline = False
        for entry in fresh:
            self._take(entry)
        await self._save()
        return []

    async def reported(self, entry: Mapping[str, Any]) -> AlarmChange | None:
        """Remember `entry` as reported (durably); the alarm change it made, if any."""
        change = self._take(entry)
        await self._save()
        return change

    def device_event(
        self, entry: Mapping[str, Any], cls: type[DeviceEvent], account: str, at: datetime
    ) -> DeviceEvent:
        module = entry.get("module_id") or entry.get("device_id")
        started = _time(entry) or at.timestamp()
        return cls(
            id=new_id(),
            at=at,
            account=account,
            structure=self.home_id,
            device=module if isinstance(module, str) else None,
            context=Context(catch_up=(at.timestamp() - started) > 60),
            started_at=datetime.fromtimestamp(started, UTC),
            vendor_id=entry["id"],
        )

    def _take(self, entry: Mapping[str, Any]) -> AlarmChange | None:
        self._seen.append(entry["id"])
        self._seen_set.add(entry["id"])
        if len(self._seen) > REMEMBERED_IDS:
            for old in self._seen[:-REMEMBERED_IDS]:
                self._seen_set.discard(old)
            self._seen = self._seen[-REMEMBERED_IDS:]
        meaning = interpret(entry)
        if not isinstance(meaning, AlarmChange):
            return None
        states = self.alarms.get(meaning.module, AlarmStates())
        self.alarms[meaning.module] = replace(states, **{meaning.attribute: meaning.state})
        return meaning

    async def _save(self) -> None:
        alarms = {m: {"smoke": str(s.smoke), "co": str(s.co)} for m, s in self.alarms.items()}
        value = json.dumps({"seen": self._seen, "alarms": alarms}, separators=(",", ":"))
        await self._memory.put(self._account, self._key, value)


def _time(entry: Mapping[str, Any]) -> float | None:
    """Unix seconds that datetime can hold (not NaN, not milliseconds by mistake), else None."""
    value = entry.get("time")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= _LATEST_TIMESTAMP:  # False for NaN too
        return None
    return float(value)
