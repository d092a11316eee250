"""TOML rules: the declarative face of the engine, compiled to the same `Rule`.

    [[rule]]
    name = "co alert"
    on = { event = "co", to = ["warning", "emergency"] }     # or { cron = ... }, { every = ... }
    condition = { any = [{ presence = "home" }, { weekday = ["sat", "sun"] }] }
    cooldown = "5m"                                           # hold, rate, debounce, mode, max
    do = [{ action = "notify", title = "CO {event.new} at {device.name}", priority = "urgent" }]

No code runs from TOML: notification texts are filled by `templates.render`, which reaches
only public fields of the event, the device and the structure; conditions are the tables
of `conditions.from_table`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from roost.api import RuleHome, ThermostatHandle
from roost.conditions import ConditionError, from_table
from roost.durations import parse_duration
from roost.events import Event
from roost.notify import Priority
from roost.rules import Rule, RuleDefinitionError, options, triggers_of
from roost.templates import TemplateError, render, validate
from roost.triggers import AnyTrigger, cron, every, startup, when

Step = Callable[[Event, RuleHome], Awaitable[None]]

RULE_KEYS = {
    "name",
    "description",
    "on",
    "condition",
    "do",
    "hold",
    "cooldown",
    "rate",
    "debounce",
    "mode",
    "max",
    "dry_run",
    "timeout",
    "react_to_own_echo",
}
TEMPLATE_NAMES = {"event", "device", "structure", "rule"}


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
    try:
        condition = from_table(table["condition"]) if "condition" in table else None
    except ConditionError as exc:
        raise RuleDefinitionError(str(exc)) from None
    mode, max_runs, rate = options(
        mode=table.get("mode", "queued"), max_runs=table.get("max", 10), rate=table.get("rate")
    )

    async def run_from(event: Event, home: RuleHome, start: int) -> None:
        for index in range(start, len(steps)):
            home.position = index
            await steps[index](event, home)

    async def body(event: Event, home: RuleHome) -> None:
        await run_from(event, home, 0)

    triggers = tuple(_trigger(t) for t in _as_list(table.get("on"), "on"))
    return Rule(
        name=name,
        triggers=triggers_of(triggers, table.get("hold")),
        body=body,
        condition=condition,
        cooldown_s=parse_duration(table.get("cooldown")),
        dry_run=bool(table.get("dry_run", False)),
        timeout_s=parse_duration(table["timeout"]) if "timeout" in table else None,
        react_to_own_echo=bool(table.get("react_to_own_echo", False)),
        source=source,
        description=str(table.get("description", "")),
        mode=mode,
        max_runs=max_runs,
        rate=rate,
        debounce_s=parse_duration(table.get("debounce")),
        resume=run_from,
    )


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        raise RuleDefinitionError(f"missing {key!r}")
    return list(value) if isinstance(value, list) else [value]


_SCHEDULES: dict[str, Callable[[Any], AnyTrigger]] = {
    "cron": lambda v: cron(str(v)),
    "every": lambda v: every(v),
    "startup": lambda v: startup(),
}


def _trigger(table: Any) -> AnyTrigger:
    if table == "startup":
        return startup()
    if not isinstance(table, dict):
        raise RuleDefinitionError('a trigger is a table: on = { event = "co" }')
    for key, build in _SCHEDULES.items():
        if key in table:
            if len(table) != 1:
                extra = sorted(set(table) - {key})[0]
                raise RuleDefinitionError(f"a {key} trigger takes no other key ({extra!r})")
            return build(table[key])
    if "event" not in table:
        raise RuleDefinitionError(
            'a trigger needs event, cron, every or startup: on = { event = "co" }'
        )
    filters = dict(table)
    return when(filters.pop("event"), device=filters.pop("device", None), **filters)


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
    if action == "delay":
        return _compile_delay(table)
    if action == "rule.run":
        return _compile_run_rule(table)
    known = ", ".join(["notify", *_THERMOSTAT_ACTIONS, "delay", "rule.run"])
    raise RuleDefinitionError(f"unknown action {action!r}; known actions: {known}")


def _compile_delay(table: dict[str, Any]) -> Step:
    if set(table) != {"action", "for"}:
        raise RuleDefinitionError('delay is { action = "delay", for = "5m" }')
    seconds = parse_duration(table["for"])

    async def delay(event: Event, home: RuleHome) -> None:
        await home.delay(seconds)

    return delay


def _compile_run_rule(table: dict[str, Any]) -> Step:
    if set(table) != {"action", "rule"} or not isinstance(table["rule"], str):
        raise RuleDefinitionError('rule.run is { action = "rule.run", rule = "other rule" }')
    name = table["rule"]

    async def run(event: Event, home: RuleHome) -> None:
        await home.run_rule(name)

    return run


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
        if key == "structure":
            return lambda event, home: _in_structure(home, str(value))
    raise RuleDefinitionError(
        'target is "event", "structure", "all", { id = ... }, { name = ... }, { room = ... }'
        " or { structure = ... }"
    )


def _in_structure(home: RuleHome, ref: str) -> list[ThermostatHandle]:
    structure = home.structure(ref)
    return home.thermostats(structure=structure.id) if structure is not None else []
