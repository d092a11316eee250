"""TOML rules: the declarative face of the engine, compiled to the same `Rule`.

    [[rule]]
    name = "co alert"
    on = { event = "co", to = ["warning", "emergency"] }     # or { cron = ... }, { every = ... }
    condition = { any = [{ presence = "home" }, { weekday = ["sat", "sun"] }] }
    cooldown = "5m"                                           # hold, rate, debounce, mode, max
    do = [{ action = "notify", title = "CO {event.new} at {device.name}", priority = "urgent" }]

A table is first checked (`toml_check`: pydantic gives it its types, every problem is
reported with its line), then compiled here from the validated `RuleTable` — plain code,
which is what the daemon runs. No code runs from TOML: notification texts are filled by
`templates.render`, which reaches only public fields of the event, the device and the
structure; conditions are the tables of `conditions.from_table`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from roost.core.durations import parse_duration
from roost.core.events import Event, Scheduled, Started
from roost.engine.rule_home import RuleHome, ThermostatHandle
from roost.rules import toml_model as m
from roost.rules.author import Rule, RuleDefinitionError, options, triggers_of
from roost.rules.check import EVENT_STRUCTURE, Reference
from roost.rules.conditions import (
    DEVICE_ATTRIBUTES,
    STRUCTURE_ATTRIBUTES,
    ConditionError,
    from_table,
)
from roost.rules.sun import sun
from roost.rules.templates import TemplateError, render, validate
from roost.rules.triggers import AnyTrigger, Trigger, cron, every, startup, when

Step = Callable[[Event, RuleHome], Awaitable[None]]
Loc = tuple[int | str, ...]
Problem = tuple[Loc, str]

TEMPLATE_NAMES = {"event", "device", "structure", "rule"}


class RuleProblems(RuleDefinitionError):
    """Everything wrong with one rule table: (where, message) pairs; `where` is a key path."""

    def __init__(self, name: str | None, problems: list[tuple[Loc, str]]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.rule = name
        self.problems = problems


@dataclass(frozen=True)
class CheckedRule:
    """A `[[rule]]` table that passed the check: what the daemon compiles (it crosses the
    process boundary pickled, so it is plain data)."""

    spec: m.RuleTable
    table: dict[str, Any]  # as written: triggers and conditions compile from it
    line: int  # where its [[rule]] header is
    references: tuple[Reference, ...] = ()


def compile_rule(checked: CheckedRule, source: str) -> Rule:
    """The `Rule` of a checked table, or `RuleProblems` (the check compiled it the same way,
    so a checked rule compiles)."""
    spec = checked.spec
    problems: list[Problem] = []
    triggers, condition, steps = _parts(checked.table, spec, problems)
    if problems:
        raise RuleProblems(spec.name, problems)
    try:
        built = _build(spec, triggers, condition, steps, source)
    except RuleDefinitionError as exc:
        raise RuleProblems(spec.name, [((exc.key or "name",), str(exc))]) from None
    built.references = checked.references
    built.step_texts = _step_texts(checked.table)
    return built


def _step_texts(table: dict[str, Any]) -> tuple[str, ...]:
    """Each `do` step as written, in one canonical text (key order and spacing aside)."""
    steps = m.as_written(table)["do"]
    return tuple(json.dumps(step, sort_keys=True, default=str) for step in steps)


def problems_of(table: Any, spec: m.RuleTable | None) -> list[Problem]:
    """What is wrong with a rule table beyond its types: durations, run options, triggers,
    the condition, the actions; with no valid `spec`, what can still be checked (the
    texts), so that every error is reported at once."""
    problems = _option_problems(spec) if spec is not None else []
    _parts(table, spec, problems)
    return problems


def _option_problems(spec: m.RuleTable) -> list[Problem]:
    problems: list[Problem] = []
    for key in ("hold", "cooldown", "debounce", "timeout"):
        try:
            parse_duration(getattr(spec, key))
        except ValueError as exc:
            problems.append(((key,), f"{key}: {exc}"))
    try:
        options(mode=spec.mode, max_runs=spec.max, rate=spec.rate)
    except RuleDefinitionError as exc:
        problems.append(((exc.key or "rate",), str(exc)))
    return problems


def _parts(
    table: Any, spec: m.RuleTable | None, problems: list[Problem]
) -> tuple[list[AnyTrigger], Any, list[Step]]:
    triggers = _triggers(table.get("on"), problems) if isinstance(table, dict) else []
    condition = None
    if isinstance(table, dict) and table.get("condition") is not None:
        try:
            condition = from_table(table["condition"])
        except ConditionError as exc:
            problems.append((("condition",), str(exc)))
    if spec is not None:
        return triggers, condition, _steps(spec, triggers, problems)
    _check_texts(table.get("do") if isinstance(table, dict) else None, triggers, problems)
    return triggers, condition, []


def references(table: dict[str, Any], spec: m.RuleTable) -> list[tuple[str, str, Loc]]:
    """The names a rule uses, with the key each is written at."""
    out: list[tuple[str, str, Loc]] = []
    on = table.get("on")
    for index, trigger in enumerate(on if isinstance(on, list) else [on]):
        if isinstance(trigger, dict) and isinstance(trigger.get("device"), str):
            where: Loc = ("on", index, "device") if isinstance(on, list) else ("on", "device")
            out.append(("device", trigger["device"], where))
    out.extend((k, v, ("condition",)) for k, v in _condition_names(table.get("condition")))
    for index, action in enumerate(spec.do):
        target = getattr(action, "target", None)
        if isinstance(target, m.TargetTable):
            for key, value in target.written().items():
                out.append((_TARGET_KINDS[key], value, ("do", index, "target")))
        if isinstance(action, m.Notify):
            out.extend(("tag", tag, ("do", index, "tags")) for tag in action.tags)
    return out


_TARGET_KINDS = {"id": "device", "name": "device", "room": "room", "structure": "structure"}


def _condition_names(table: Any) -> list[tuple[str, str]]:
    if isinstance(table, list):
        return [name for part in table for name in _condition_names(part)]
    if not isinstance(table, dict):
        return []
    out = []
    for key in ("all", "any", "not"):
        if key in table:
            out.extend(_condition_names(table[key]))
    if "presence" in table or "structure" in table:
        out.append(("structure", str(table.get("structure", EVENT_STRUCTURE))))
    elif "attribute" in table and str(table.get("device", "event")) != "event":
        out.append(("device", str(table["device"])))
    return out


def _build(
    spec: m.RuleTable,
    triggers: list[AnyTrigger],
    condition: Any,
    steps: list[Step],
    source: str,
) -> Rule:
    mode, max_runs, rate = options(mode=spec.mode, max_runs=spec.max, rate=spec.rate)

    async def run_from(event: Event, home: RuleHome, start: int) -> None:
        for index in range(start, len(steps)):
            await steps[index](event, home)

    async def body(event: Event, home: RuleHome) -> None:
        await run_from(event, home, 0)

    return Rule(
        name=spec.name,
        triggers=triggers_of(triggers, spec.hold),
        body=body,
        condition=condition,
        cooldown_s=_seconds(spec.cooldown, "cooldown"),
        dry_run=spec.dry_run,
        timeout_s=_seconds(spec.timeout, "timeout") if spec.timeout is not None else None,
        react_to_own_echo=spec.react_to_own_echo,
        source=source,
        description=spec.description,
        mode=mode,
        max_runs=max_runs,
        rate=rate,
        debounce_s=_seconds(spec.debounce, "debounce"),
        resume=run_from,
    )


def _seconds(value: str | float | None, key: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleDefinitionError(f"{key}: {exc}", key) from None


def _triggers(on: Any, problems: list[tuple[Loc, str]]) -> list[AnyTrigger]:
    if on is None:
        return []
    items = on if isinstance(on, list) else [on]
    out: list[AnyTrigger] = []
    for index, item in enumerate(items):
        where: Loc = ("on", index) if isinstance(on, list) else ("on",)
        try:
            out.append(_trigger(item))
        except RuleDefinitionError as exc:
            problems.append(((*where, exc.key) if exc.key else where, str(exc)))
    return out


def _event_fields(triggers: list[AnyTrigger]) -> frozenset[str]:
    """The fields `{event.*}` may name: those of every event the rule can run for."""
    classes: set[type[Event]] = set()
    for t in triggers:
        classes.add(t.event if isinstance(t, Trigger) else Scheduled)
        if not isinstance(t, Trigger):
            classes.add(Started)
    names = [frozenset(f.name for f in dataclasses.fields(c)) | {"name"} for c in classes]
    return frozenset.intersection(*names) if names else frozenset()


def _steps(
    spec: m.RuleTable, triggers: list[AnyTrigger], problems: list[tuple[Loc, str]]
) -> list[Step]:
    fields = {"event": _event_fields(triggers)} if triggers else {}
    out = []
    for index, action in enumerate(spec.do):
        try:
            out.append(_compile_step(action, fields, index))
        except RuleDefinitionError as exc:
            problems.append((("do", index, exc.key) if exc.key else ("do", index), str(exc)))
    return out


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
    if "sun" in table:
        extra = sorted(set(table) - {"sun", "offset", "structure"})
        if extra:
            raise RuleDefinitionError(f"a sun trigger takes no key {extra[0]!r}", extra[0])
        offset = table.get("offset", 0)
        return sun(str(table["sun"]), offset=offset, structure=table.get("structure"))
    if "event" not in table:
        raise RuleDefinitionError(
            'a trigger needs event, cron, every, sun or startup: on = { event = "co" }'
        )
    filters = dict(table)
    return when(filters.pop("event"), device=filters.pop("device", None), **filters)


# ---- actions ---------------------------------------------------------------------------

_THERMOSTAT_METHODS: dict[type[m.ThermostatAction], tuple[str, tuple[str, ...]]] = {
    m.SetMode: ("set_mode", ("mode",)),
    m.SetEco: ("set_eco", ("on",)),
    m.SetHeat: ("set_heat", ("celsius",)),
    m.SetCool: ("set_cool", ("celsius",)),
    m.SetRange: ("set_range", ("heat", "cool")),
    m.SetFanTimer: ("set_fan_timer", ("minutes",)),
}


def _compile_step(action: m.AnyAction, fields: dict[str, frozenset[str]], index: int) -> Step:
    if isinstance(action, m.Notify):
        return _compile_notify(action, fields)
    if isinstance(action, m.Delay):
        return _compile_delay(action, index)
    if isinstance(action, m.RunRule):
        return _compile_run_rule(action)
    if isinstance(action, m.Snapshot | m.Restore):
        return _compile_memory(action)
    return _compile_thermostat(action)


def _compile_memory(action: m.Snapshot | m.Restore) -> Step:
    name = action.name
    if isinstance(action, m.Restore):

        async def restore(event: Event, home: RuleHome) -> None:
            await home.restore(name)

        return restore
    whole = action.target == "all"

    async def snapshot(event: Event, home: RuleHome) -> None:
        await home.snapshot(name, structure=None if whole else event.structure)

    return snapshot


def _compile_delay(action: m.Delay, index: int) -> Step:
    seconds = _seconds(action.for_, "for")

    async def delay(event: Event, home: RuleHome) -> None:
        await home.delay_resumable(seconds, resume_at=index + 1)

    return delay


def _compile_run_rule(action: m.RunRule) -> Step:
    name = action.rule

    async def run(event: Event, home: RuleHome) -> None:
        await home.run_rule(name)

    return run


TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "device": DEVICE_ATTRIBUTES,
    "structure": STRUCTURE_ATTRIBUTES,
    "rule": frozenset(),
}


def _check_texts(do: Any, triggers: list[AnyTrigger], problems: list[tuple[Loc, str]]) -> None:
    """The notification templates of a rule whose actions did not validate as a whole."""
    known = {**TEMPLATE_FIELDS, **({"event": _event_fields(triggers)} if triggers else {})}
    items = do if isinstance(do, list) else [do]
    for index, action in enumerate(items):
        if not isinstance(action, dict) or action.get("action") != "notify":
            continue
        for key in ("title", "body"):
            text = action.get(key)
            try:
                if isinstance(text, str):
                    validate(text, TEMPLATE_NAMES, known)
            except TemplateError as exc:
                where: Loc = ("do", index, key) if isinstance(do, list) else ("do", key)
                problems.append((where, str(exc)))


def _compile_notify(action: m.Notify, fields: dict[str, frozenset[str]]) -> Step:
    title, body, priority = action.title, action.body, action.priority
    known = {**TEMPLATE_FIELDS, **fields}
    for key, text in (("title", title), ("body", body)):
        try:
            validate(text, TEMPLATE_NAMES, known)
        except TemplateError as exc:
            raise RuleDefinitionError(str(exc), key) from None
    tags = tuple(action.tags)

    async def notify(event: Event, home: RuleHome) -> None:
        device = home.find_device()
        names: dict[str, Any] = {
            "event": dataclasses.replace(event, at=event.at.astimezone(home.local_now().tzinfo)),
            "device": device.state if device else {},
            "structure": home.structure() or {},
            "rule": home.rule,
        }
        await home.notify(
            render(title, **names), render(body, **names), tags=tags, priority=priority
        )

    return notify


def _compile_thermostat(action: m.ThermostatAction) -> Step:
    method, params = _THERMOSTAT_METHODS[type(action)]
    args = [getattr(action, p) for p in params]
    select = _compile_target(action.target)

    async def act(event: Event, home: RuleHome) -> None:
        for thermostat in select(event, home):
            await getattr(thermostat, method)(*args)

    return act


def _compile_target(target: Any) -> Callable[[Event, RuleHome], list[ThermostatHandle]]:
    if isinstance(target, m.TargetTable):
        target = target.written()
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
        " or { structure = ... }",
        "target",
    )


def _in_structure(home: RuleHome, ref: str) -> list[ThermostatHandle]:
    structure = home.structure(ref)
    return home.thermostats(structure=structure.id) if structure is not None else []
