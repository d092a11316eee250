"""Live events as rows for the page, and each command's causation chain:
the event → the rule → the command → the guards' answer and the vendor's → the device's
echo, with the time each step took after the event.

Built from event dicts (as the journal and `codec.event_to_dict` give them), so the same
code reads the journal on page load and the bus afterwards.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from roost.state.home_state import SEMANTIC

EVENTS_KEPT = 2000  # recent events, to find the cause of a command
CHAINS_KEPT = 200
STEPS_KEPT = 32
ALARM_EVENTS = frozenset({"smoke", "co"})
_PLAIN = frozenset({"event", "id", "at", "account", "structure", "device", "context"})
# Attributes whose change also comes as its own named event (presence, co, …): their
# generic `attribute` event would show the same change twice.
TWINNED = frozenset({attribute for _, attribute in SEMANTIC} | {"online"})

NameOf = Callable[[str], str]


def _ms_between(start: str | None, end: str | None) -> int | None:
    if not start or not end:
        return None
    try:
        delta = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    except ValueError:
        return None
    return round(delta.total_seconds() * 1000)


def summary(data: dict[str, Any]) -> str:
    """One line about an event, for people."""
    name = data.get("event")
    if name == "command":
        text = f"{data.get('action')}: {data.get('outcome')}"
        if data.get("guard"):
            text += f" by guard {data['guard']}"
        if data.get("reason"):
            text += f" ({data['reason']})"
        return text
    if name == "account":
        return f"{data.get('state')}" + (f": {data['detail']}" if data.get("detail") else "")
    if name == "notification":
        return f"{data.get('title')!s}: {data.get('delivery')}"
    if "new" in data:
        attribute = data.get("attribute")
        prefix = f"{attribute} " if attribute else ""
        return f"{prefix}{data.get('old')} → {data.get('new')}"
    extra = [f"{k}={v}" for k, v in data.items() if k not in _PLAIN and v not in (None, "", [])]
    return " ".join(extra)


def twin(data: dict[str, Any]) -> bool:
    """A generic attribute event whose named twin says the same."""
    return data.get("event") == "attribute" and data.get("attribute") in TWINNED


def event_row(data: dict[str, Any], name_of: NameOf) -> dict[str, Any]:
    device_id = str(data.get("device") or data.get("target") or "")
    context = data.get("context") or {}
    return {
        "id": data.get("id"),
        "at": data.get("at"),
        "account": data.get("account", ""),
        "kind": data.get("event"),
        "device": name_of(device_id) if device_id else "",
        "device_id": device_id,
        "text": summary(data),
        "alarm": data.get("event") in ALARM_EVENTS and data.get("new") not in (None, "ok"),
        "command": context.get("causation"),
        # the rule whose command this is the echo (or the outcome) of
        "rule": context.get("rule") or data.get("rule"),
        "catch_up": bool(context.get("catch_up")),
    }


class Chains:
    """The latest commands and their chains, fed one event dict at a time."""

    def __init__(self, name_of: NameOf) -> None:
        self._name_of = name_of
        self._events: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._chains: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def add(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """Take one event; returns the chain it changed, if any."""
        event_id = str(data.get("id") or "")
        if event_id:
            self._events[event_id] = data
            if len(self._events) > EVENTS_KEPT:
                self._events.popitem(last=False)
        if data.get("event") == "command":
            return self._step(data)
        causation = (data.get("context") or {}).get("causation")
        chain = self._chains.get(str(causation)) if causation else None
        if chain is None or twin(data):
            return None
        if len(chain["echo"]) < STEPS_KEPT:
            chain["echo"].append(
                {
                    "what": summary(data),
                    "kind": data.get("event"),
                    "after_ms": _ms_between(chain["start"], data.get("at")),
                }
            )
        return chain

    def latest(self) -> list[dict[str, Any]]:
        return list(self._chains.values())

    def _step(self, data: dict[str, Any]) -> dict[str, Any]:
        command = str(data.get("command"))
        chain = self._chains.get(command)
        if chain is None:
            chain = self._chains[command] = self._new(command, data)
            if len(self._chains) > CHAINS_KEPT:
                self._chains.popitem(last=False)
        latency = data.get("latency_s")
        if len(chain["steps"]) < STEPS_KEPT:
            chain["steps"].append(
                {
                    "outcome": data.get("outcome"),
                    "guard": data.get("guard"),
                    "reason": data.get("reason") or "",
                    "attempt": data.get("attempt") or 0,
                    "after_ms": _ms_between(chain["start"], data.get("at")),
                    "latency_ms": None if latency is None else round(float(latency) * 1000),
                }
            )
        return chain

    def _new(self, command: str, data: dict[str, Any]) -> dict[str, Any]:
        cause = self._events.get(str(data.get("cause") or ""))
        target = str(data.get("target") or data.get("device") or "")
        return {
            "command": command,
            "account": data.get("account", ""),
            "rule": data.get("rule") or "",
            "action": data.get("action") or "",
            "target": self._name_of(target) if target else "",
            "device_id": target,
            "cause": None
            if cause is None
            else {
                "kind": cause.get("event"),
                "device": self._name_of(str(cause.get("device") or "")),
                "what": summary(cause),
                "at": cause.get("at"),
            },
            "start": cause.get("at") if cause else data.get("at"),
            "steps": [],
            "echo": [],
        }
