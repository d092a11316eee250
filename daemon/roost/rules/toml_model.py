"""The TOML rule file as plain dataclasses: the shape every `[[rule]]` table must have.

pydantic validates a table against `RuleTable` where the files are checked
(`roost.rules.toml_schema`, in a child process for `roost run`), so a wrong type
(`tags = "urgent"`, `celsius = "twenty"`, `mode = "turbo"`) is refused at load time with
the key it is at; the daemon compiles the validated `RuleTable` and never imports pydantic.
The markers below are what pydantic reads of these classes; they import it only when it
asks. Triggers and conditions are checked by `triggers` / `conditions` (they know each
event's value types); the model only says which keys they take, for the editor.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, MinLen

from roost.core.model import ThermostatMode
from roost.notify.notifier import Priority
from roost.rules.author import RunMode


def key_of(name: str) -> str:
    """The key a field is written as: `for_` is `for` (a Python keyword)."""
    return name.removesuffix("_")


def required(table: type[Any], name: str) -> bool:
    found = next(f for f in fields(table) if f.name == name)
    return found.default is MISSING and found.default_factory is MISSING


class Strictly:
    """The value must already have the type (`"20"` is not a number, `1` not a flag)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        schema = handler(source)
        schema["strict"] = True
        return schema


class Tagged:
    """A union of tables told apart by one key (each table's `Literal` value of it)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic import Field

        return handler.generate_schema(Annotated[source, Field(discriminator=self.key)])


class Described:
    """A description for the JSON Schema (what an editor shows)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> Any:
        out = handler(schema)
        out["description"] = self.text
        return out


def _config(doc: str | None = None, extra: str = "forbid") -> dict[str, Any]:
    """What pydantic reads of a table: unknown keys refused, `for_` written `for`, and the
    docstring for the editor (pydantic skips a plain dataclass's own)."""
    out: dict[str, Any] = {"extra": extra, "alias_generator": key_of}
    if doc:
        out["json_schema_extra"] = {"description": " ".join(doc.split())}
    return out


Number = Annotated[float, Strictly()]  # an int or a float; never a string
Flag = Annotated[bool, Strictly()]
Text = Annotated[str, MinLen(1)]
Duration = Annotated[str | Number, Described('"30s", "5m", "1h", "1d" or seconds')]
TargetRef = Literal["event", "structure", "all"]


@dataclass(kw_only=True)
class TargetTable:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    id: str | None = None
    name: str | None = None
    room: str | None = None
    structure: str | None = None

    def written(self) -> dict[str, str]:
        """The keys given, as in the file."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


Target = Annotated[
    TargetRef | TargetTable,
    Described('"event", "structure", "all", { name = }, { room = } or { structure = }'),
]


@dataclass(kw_only=True)
class Notify:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["notify"]
    title: Text
    body: str = ""
    tags: list[str] = field(default_factory=list)
    priority: Priority = Priority.NORMAL


@dataclass(kw_only=True)
class SetMode:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["thermostat.set_mode"]
    target: Target = "event"
    mode: ThermostatMode


@dataclass(kw_only=True)
class SetEco:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["thermostat.set_eco"]
    target: Target = "event"
    on: Flag = True


@dataclass(kw_only=True)
class SetHeat:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["thermostat.set_heat"]
    target: Target = "event"
    celsius: Number


@dataclass(kw_only=True)
class SetCool:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["thermostat.set_cool"]
    target: Target = "event"
    celsius: Number


@dataclass(kw_only=True)
class SetRange:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["thermostat.set_range"]
    target: Target = "event"
    heat: Number
    cool: Number


@dataclass(kw_only=True)
class SetFanTimer:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["thermostat.set_fan_timer"]
    target: Target = "event"
    minutes: Annotated[int, Strictly(), Ge(1)]


@dataclass(kw_only=True)
class Delay:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["delay"]
    for_: Duration


@dataclass(kw_only=True)
class RunRule:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    action: Literal["rule.run"]
    rule: Text


@dataclass(kw_only=True)
class Snapshot:
    """Remember the thermostats' modes and setpoints (of the target) under `name`."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _config(__doc__)
    action: Literal["snapshot"]
    name: Text
    target: Literal["structure", "all"] = "structure"


@dataclass(kw_only=True)
class Restore:
    """Put back what snapshot `name` remembered (commands pass the guards)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _config(__doc__)
    action: Literal["restore"]
    name: Text


ThermostatAction = SetMode | SetEco | SetHeat | SetCool | SetRange | SetFanTimer
AnyAction = Notify | ThermostatAction | Delay | RunRule | Snapshot | Restore
Action = Annotated[AnyAction, Tagged("action")]
ACTIONS: tuple[type[AnyAction], ...] = typing.get_args(AnyAction)
ACTION_NAMES: tuple[str, ...] = tuple(
    typing.get_args(typing.get_type_hints(action)["action"])[0] for action in ACTIONS
)


@dataclass(kw_only=True)
class EventTrigger:
    """An event and filters on its fields (`to`, `from`, `device`, `attribute`, …)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _config(__doc__, extra="allow")
    event: str
    device: str | None = None
    to: Any = None
    from_: Any = None
    above: Number | None = None
    below: Number | None = None
    hysteresis: Number | None = None
    hold: Duration | None = None


@dataclass(kw_only=True)
class CronTrigger:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    cron: str


@dataclass(kw_only=True)
class EveryTrigger:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    every: Duration


@dataclass(kw_only=True)
class SunTrigger:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    sun: Literal["sunrise", "sunset", "dawn", "dusk", "noon"]
    offset: Annotated[Duration | None, Described('"-30m": before, "15m": after')] = None
    structure: str | None = None


TriggerSpec = Literal["startup"] | CronTrigger | EveryTrigger | SunTrigger | EventTrigger
ConditionSpec = dict[str, Any] | list[dict[str, Any]]


@dataclass(kw_only=True)
class RuleTable:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    name: Text
    description: str = ""
    on: TriggerSpec | list[TriggerSpec]
    condition: ConditionSpec | None = None
    do: Annotated[list[Action], MinLen(1)]
    hold: Duration | None = None
    cooldown: Duration | None = None
    rate: Annotated[str | None, Described('"3/1h": at most 3 runs an hour')] = None
    debounce: Duration | None = None
    mode: RunMode = RunMode.QUEUED
    max: Annotated[int, Strictly(), Ge(1)] = 10
    dry_run: Flag = False
    timeout: Duration | None = None
    react_to_own_echo: Flag = False


RULE_KEYS = frozenset(key_of(f.name) for f in fields(RuleTable))


@dataclass(kw_only=True)
class RuleFile:
    __pydantic_config__: ClassVar[dict[str, Any]] = _config()
    rule: list[RuleTable]


def as_written(table: dict[str, Any]) -> dict[str, Any]:
    """A `[[rule]]` table as the model reads it: `do` may be one table instead of a list."""
    data = dict(table)
    if isinstance(data.get("do"), dict):
        data["do"] = [data["do"]]
    return data
