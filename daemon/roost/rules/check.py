"""What `roost check` can know about rules before they run, beyond loading them.

Python rules: literal arguments that would fail at run time (`priority="critical"`,
`tags="urgent"`, `set_mode("turbo")`, `set_heat("twenty")`) are found in the syntax tree.
Both faces: the device, room, structure and tag names a rule uses are checked against the
last known home (from the store) and the notification targets, when those are known.
"""

from __future__ import annotations

import ast
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.core.model import Home, ThermostatMode
from roost.notify.notifier import Priority
from roost.rules.triggers import Trigger


@dataclass(frozen=True)
class Reference:
    """A name a rule uses: kind is device, room, structure or tag; line is where."""

    kind: str
    value: str
    line: int


EVENT_STRUCTURE = "event"  # a structure condition with no structure: the event's one


# ---- Python literals -------------------------------------------------------------------

_NUMBER_METHODS = {"set_heat", "set_cool", "set_range", "set_fan_timer"}
_NAME_CALLS = {
    # call name -> (kind of its first positional argument, {keyword: kind})
    "device": ("device", {}),
    "find_device": ("device", {}),
    "device_state": ("device", {}),
    "structure_state": ("structure", {}),
    "structure": ("structure", {}),
    "thermostats": ("", {"name": "device", "room": "room", "structure": "structure"}),
    "when": ("", {"device": "device"}),
    "presence": ("", {"structure": "structure"}),
}


def python_problems(tree: ast.AST) -> tuple[list[tuple[int, str]], list[Reference]]:
    """Literal arguments that can only fail, and the names the file uses."""
    problems: list[tuple[int, str]] = []
    refs: list[Reference] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            problems.extend(_literal_problems(name, node))
            refs.extend(_references(name, node))
    return problems, refs


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return node.func.id if isinstance(node.func, ast.Name) else ""


def _literal(node: ast.AST | None) -> Any:
    return node.value if isinstance(node, ast.Constant) else _NOT_LITERAL


_NOT_LITERAL = object()


def _keyword(node: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in node.keywords if k.arg == name), None)


def _literal_problems(name: str, node: ast.Call) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    if name == "notify":
        priority = _keyword(node, "priority")
        value = _literal(priority)
        if isinstance(value, str) and value not in set(Priority):
            known = ", ".join(p.value for p in Priority)
            out.append((_line(priority, node), f"priority {value!r}: use one of {known}"))
        tags = _keyword(node, "tags")
        if isinstance(_literal(tags), str):
            out.append((_line(tags, node), f'tags is a list: tags=["{_literal(tags)}"]'))
    elif name == "set_mode" and node.args:
        value = _literal(node.args[0])
        if isinstance(value, str) and value not in set(ThermostatMode):
            known = ", ".join(m.value for m in ThermostatMode)
            out.append((node.args[0].lineno, f"set_mode({value!r}): use one of {known}"))
    elif name in _NUMBER_METHODS:
        for arg in node.args:
            value = _literal(arg)
            if isinstance(value, str | bool):
                out.append((arg.lineno, f"{name} takes a number, not {value!r}"))
    return out


def _line(value: ast.AST | None, node: ast.Call) -> int:
    return int(getattr(value, "lineno", node.lineno))


def _references(name: str, node: ast.Call) -> list[Reference]:
    first, keywords = _NAME_CALLS.get(name, ("", {}))
    out = []
    if first and node.args and isinstance(_literal(node.args[0]), str):
        out.append(Reference(first, _literal(node.args[0]), node.args[0].lineno))
    for keyword, kind in keywords.items():
        value = _keyword(node, keyword)
        if isinstance(_literal(value), str):
            out.append(Reference(kind, _literal(value), _line(value, node)))
    if name == "presence" and _keyword(node, "structure") is None and len(node.args) < 2:
        out.append(Reference("structure", EVENT_STRUCTURE, node.lineno))
    if name == "notify":
        tags = _keyword(node, "tags")
        if isinstance(tags, ast.List | ast.Tuple):
            for element in tags.elts:
                if isinstance(_literal(element), str):
                    out.append(Reference("tag", _literal(element), element.lineno))
    return out


# ---- against the home ------------------------------------------------------------------


def stored_homes(state_dir: Path) -> list[Home] | None:
    """The last known home of every account, read-only from the store; None if none."""
    from roost.core.codec import home_from_dict
    from roost.store.sqlite import FILE_NAME

    path = state_dir / FILE_NAME
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            rows = conn.execute("SELECT snapshot FROM home_state").fetchall()
    except sqlite3.Error:
        return None
    import json

    homes = []
    for (snapshot,) in rows:
        try:
            homes.append(home_from_dict(json.loads(snapshot)))
        except (KeyError, TypeError, ValueError):
            continue
    return homes or None


@dataclass(frozen=True)
class Known:
    """The names rules may use: from the stored homes and the notification targets."""

    devices: frozenset[str] | None = None  # casefolded names and ids
    device_names: tuple[str, ...] = ()
    rooms: frozenset[str] | None = None
    room_names: tuple[str, ...] = ()
    structures: tuple[str, ...] | None = None  # names
    structure_keys: frozenset[str] = frozenset()
    tags: frozenset[str] | None = None  # tags some target has

    @classmethod
    def of(cls, homes: Sequence[Home] | None, tags: Iterable[str] | None) -> Known:
        tag_set = frozenset(tags) if tags is not None else None
        if not homes:
            return cls(tags=tag_set)
        devices = [d for h in homes for d in h.devices.values()]
        structures = [s for h in homes for s in h.structures.values()]
        return cls(
            devices=frozenset(x.casefold() for d in devices for x in (d.name, d.id)),
            device_names=tuple(sorted(d.name for d in devices)),
            rooms=frozenset((d.room or "").casefold() for d in devices if d.room),
            room_names=tuple(sorted({d.room for d in devices if d.room})),
            structures=tuple(sorted(s.name for s in structures)),
            structure_keys=frozenset(x.casefold() for s in structures for x in (s.name, s.id)),
            tags=tag_set,
        )


def reference_problems(
    references: Iterable[Reference], known: Known, scheduled: bool
) -> list[tuple[int, str]]:
    """Names that the home or the notification targets do not have."""
    out = []
    for ref in references:
        message = _unknown(ref, known, scheduled)
        if message:
            out.append((ref.line, message))
    return out


def _unknown(ref: Reference, known: Known, scheduled: bool) -> str | None:
    value = ref.value.casefold()
    devices = known.devices
    if ref.kind == "device" and devices is not None and value not in (*devices, "event"):
        return f"no device {ref.value!r}; the home has: {', '.join(known.device_names)}"
    if ref.kind == "room" and known.rooms is not None and value not in known.rooms:
        return f"no room {ref.value!r}; the home has: {', '.join(known.room_names)}"
    if ref.kind == "structure" and known.structures is not None:
        if ref.value == EVENT_STRUCTURE:
            if scheduled and len(known.structures) > 1:
                return (
                    "this condition is about the event's structure, but the rule runs on a "
                    "schedule and the home has several: name one (structure = "
                    f"{', '.join(repr(s) for s in known.structures)})"
                )
        elif value not in known.structure_keys:
            return f"no structure {ref.value!r}; the home has: {', '.join(known.structures)}"
    if ref.kind == "tag" and known.tags is not None and ref.value not in known.tags:
        return (
            f"no notification target has the tag {ref.value!r}: add it to a "
            "[[notify.targets]] entry's tags"
        )
    return None


def scheduled(triggers: Sequence[object]) -> bool:
    """The rule can run without an event about a structure (a schedule or the start)."""
    return any(not isinstance(t, Trigger) for t in triggers)
