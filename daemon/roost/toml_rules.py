"""TOML rules: the declarative face of the engine, compiled to the same `Rule`.

    [[rule]]
    name = "co alert"
    on = { event = "co", to = ["warning", "emergency"] }
    cooldown = "5m"
    do = [{ action = "notify", title = "CO {event.new} at {device.name}", priority = "urgent" }]

No code runs from TOML: notification texts are filled by `templates.render`, which reaches
only public fields of the event, the device and the structure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from roost.api import RuleHome, ThermostatHandle
from roost.durations import parse_duration
from roost.events import Event
from roost.model import Camera, SmokeCoAlarm, Structure, Thermostat, attribute_names
from roost.notify import Priority
from roost.rules import Rule, RuleDefinitionError, Trigger, when
from roost.templates import TemplateError, render, validate

Step = Callable[[Event, RuleHome], Awaitable[None]]

RULE_KEYS = {"name", "description", "on", "condition", "do", "cooldown", "dry_run", "timeout"}
TEMPLATE_NAMES = {"event", "device", "structure", "rule"}
DEVICE_ATTRIBUTES = set().union(*(attribute_names(c) for c in (Thermostat, SmokeCoAlarm, Camera)))
STRUCTURE_ATTRIBUTES = set(attribute_names(Structure))


def compile_rule(table: dict[str, Any], source: str) -> Rule:
    unknown = set(table) - RULE_KEYS
    if unknown:
        raise RuleDefinitionError(
            f"unknown key {sorted(unknown)[0]!r}; a rule has: {', '.join(sorted(RULE_KEYS))}"
        )
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise RuleDefinitionError("every rule needs a name")
    steps = [_compile_step(step) for step in _as_list(table.get("do"), "do")]
    if not steps:
        raise RuleDefinitionError(f"rule {name!r} does nothing: add a 'do' list")
    condition = _compile_conditions(_as_list(table.get("condition", []), "condition"))

    async def body(event: Event, home: RuleHome) -> None:
        for step in steps:
            await step(event, home)

    return Rule(
        name=name,
        triggers=tuple(_trigger(t) for t in _as_list(table.get("on"), "on")),
        body=body,
        condition=condition,
        cooldown_s=parse_duration(table.get("cooldown")),
        dry_run=bool(table.get("dry_run", False)),
        timeout_s=parse_duration(table["timeout"]) if "timeout" in table else None,
        source=source,
        description=str(table.get("description", "")),
    )


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        raise RuleDefinitionError(f"missing {key!r}")
    return list(value) if isinstance(value, list) else [value]


def _trigger(table: Any) -> Trigger:
    if not isinstance(table, dict) or "event" not in table:
        raise RuleDefinitionError('a trigger is a table with an event: on = { event = "co" }')
    filters = dict(table)
    return when(filters.pop("event"), device=filters.pop("device", None), **filters)


# ---- conditions ------------------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda v, w: v == w,
    "not_equals": lambda v, w: v != w,
    "in": lambda v, w: v in w,
    "above": lambda v, w: v is not None and v > w,
    "below": lambda v, w: v is not None and v < w,
}


def _compile_conditions(tables: list[Any]) -> Callable[[Event, RuleHome], bool] | None:
    checks = [_compile_condition(t) for t in tables]
    if not checks:
        return None
    return lambda event, home: all(check(event, home) for check in checks)


def _compile_condition(table: Any) -> Callable[[Event, RuleHome], bool]:
    if not isinstance(table, dict):
        raise RuleDefinitionError(
            "a condition is a table: { device = ..., attribute = ..., equals = ... }"
        )
    spec = dict(table)
    attribute = spec.pop("attribute", None)
    ops = [(op, spec.pop(op)) for op in list(spec) if op in _OPS]
    if len(ops) != 1:
        raise RuleDefinitionError(f"a condition needs exactly one of: {', '.join(_OPS)}")
    op, wanted = ops[0]
    test = _OPS[op]
    if "structure" in spec:
        ref = spec.pop("structure")
        _check_attribute(attribute, STRUCTURE_ATTRIBUTES, "structure")
        _no_leftovers(spec)

        def check_structure(event: Event, home: RuleHome) -> bool:
            structure = home.structure(None if ref == "event" else ref)
            return structure is not None and test(getattr(structure, str(attribute)), wanted)

        return check_structure
    ref = spec.pop("device", "event")
    _check_attribute(attribute, DEVICE_ATTRIBUTES, "device")
    _no_leftovers(spec)

    def check(event: Event, home: RuleHome) -> bool:
        device = home.device(None if ref == "event" else ref)
        if device is None or not hasattr(device.state, str(attribute)):
            return False
        return test(getattr(device.state, str(attribute)), wanted)

    return check


def _check_attribute(attribute: Any, known: set[str], what: str) -> None:
    if attribute not in known:
        raise RuleDefinitionError(
            f"unknown {what} attribute {attribute!r}; known: {', '.join(sorted(known))}"
        )


def _no_leftovers(spec: dict[str, Any]) -> None:
    if spec:
        raise RuleDefinitionError(f"unknown condition key {sorted(spec)[0]!r}")


# ---- actions ---------------------------------------------------------------------------

_THERMOSTAT_ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "thermostat.set_mode": ("set_mode", ("mode",)),
    "thermostat.set_eco": ("set_eco", ("on",)),
    "thermostat.set_heat": ("set_heat", ("celsius",)),
    "thermostat.set_cool": ("set_cool", ("celsius",)),
    "thermostat.set_range": ("set_range", ("heat", "cool")),
    "thermostat.set_fan_timer": ("set_fan_timer", ("minutes",)),
}
_NOTIFY_KEYS = {"action", "title", "body", "tags", "priority"}


def _compile_step(table: Any) -> Step:
    if not isinstance(table, dict) or "action" not in table:
        raise RuleDefinitionError('an action is a table: { action = "notify", title = "..." }')
    action = table["action"]
    if action == "notify":
        return _compile_notify(table)
    if action in _THERMOSTAT_ACTIONS:
        return _compile_thermostat(table)
    known = ", ".join(["notify", *_THERMOSTAT_ACTIONS])
    raise RuleDefinitionError(f"unknown action {action!r}; known actions: {known}")


def _compile_notify(table: dict[str, Any]) -> Step:
    unknown = set(table) - _NOTIFY_KEYS
    if unknown:
        raise RuleDefinitionError(f"notify has no key {sorted(unknown)[0]!r}")
    title, body = str(table.get("title", "")), str(table.get("body", ""))
    if not title:
        raise RuleDefinitionError("notify needs a title")
    try:
        validate(title, TEMPLATE_NAMES)
        validate(body, TEMPLATE_NAMES)
        priority = Priority(table.get("priority", "normal"))
    except (TemplateError, ValueError) as exc:
        raise RuleDefinitionError(str(exc)) from exc
    tags = tuple(str(t) for t in table.get("tags", ()))

    async def notify(event: Event, home: RuleHome) -> None:
        device = home.device()
        names: dict[str, Any] = {
            "event": event,
            "device": device.state if device else {},
            "structure": home.structure() or {},
            "rule": home.rule,
        }
        await home.notify(
            render(title, **names), render(body, **names), tags=tags, priority=priority
        )

    return notify


def _compile_thermostat(table: dict[str, Any]) -> Step:
    method, params = _THERMOSTAT_ACTIONS[table["action"]]
    unknown = set(table) - {"action", "target", *params}
    if unknown:
        raise RuleDefinitionError(f"{table['action']} has no key {sorted(unknown)[0]!r}")
    if method == "set_eco":
        args = [bool(table.get("on", True))]
    else:
        missing = [p for p in params if p not in table]
        if missing:
            raise RuleDefinitionError(f"{table['action']} needs {missing[0]!r}")
        args = [table[p] for p in params]
    select = _compile_target(table.get("target", "event"))

    async def act(event: Event, home: RuleHome) -> None:
        for thermostat in select(event, home):
            await getattr(thermostat, method)(*args)

    return act


def _compile_target(target: Any) -> Callable[[Event, RuleHome], list[ThermostatHandle]]:
    if target == "event":
        return lambda event, home: home.thermostats(name=event.device) if event.device else []
    if target == "structure":
        return lambda event, home: home.thermostats(structure=event.structure)
    if target == "all":
        return lambda event, home: home.thermostats()
    if isinstance(target, dict) and len(target) == 1:
        key, value = next(iter(target.items()))
        if key in ("id", "name"):
            return lambda event, home: home.thermostats(name=str(value))
        if key == "room":
            return lambda event, home: home.thermostats(room=str(value))
    raise RuleDefinitionError(
        'target is "event", "structure", "all", { id = ... }, { name = ... } or { room = ... }'
    )
