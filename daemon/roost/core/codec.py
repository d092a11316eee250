"""JSON-ready dicts for the model and the events, and back.

Used to keep the last known state of a home, to journal events and to record and replay
them. Enums become their values, datetimes ISO 8601 strings, tuples lists; decoding reads
each dataclass field's type to turn them back. Shared by the store, the journal, timers
and replay: extend it, don't fork it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import json.encoder
import math
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

from roost.core import model
from roost.core.events import EVENT_TYPES, Context, Event

ENTITY_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (model.Structure, model.Thermostat, model.SmokeCoAlarm, model.Camera, model.Doorbell)
}


class CodecError(ValueError):
    pass


_PLAIN = frozenset({str, int, float, bool, type(None)})
_SEQUENCES = (tuple, list)  # a tuple: `tuple | list` would build a union on every call
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def to_json(value: Any) -> Any:
    """Plain JSON values: this runs for every journaled event, so the common cases go first."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    names = _FIELD_NAMES.get(kind)  # a dataclass met before (an event's context)
    if names is not None:
        return {name: to_json(getattr(value, name)) for name in names}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, _SEQUENCES):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_json(getattr(value, name)) for name in _field_names(kind)}
    return value


def dumps(value: Any, **options: Any) -> str:
    """Strict JSON (RFC 8259) for everything that leaves roost: the journal, the store,
    the control socket and every `--json`. A non-finite number (NaN, ±inf) is not a value
    anyone can use, so it is written as null (unknown), the same everywhere."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False, **options)


def _not_plain(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder json.dumps builds per call, built once: no per-call encoder set-up. No
# check for cycles, so only for values made of plain JSON values (to_json's output).
_C_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)  # None off CPython
_PLAIN_ENCODER: Callable[[Any, int], tuple[str, ...]] | None = (
    None
    if _C_MAKE_ENCODER is None
    else _C_MAKE_ENCODER(
        None,
        _not_plain,
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        False,
    )
)


def dumps_plain(value: Any) -> str:
    """`dumps(value)` for a value of plain JSON values (dicts, lists, str, numbers, bool,
    None; no cycles), as `to_json` makes them: the journal writes one per event."""
    if _PLAIN_ENCODER is None:
        return dumps(value)
    try:
        return "".join(_PLAIN_ENCODER(value, 0))
    except ValueError:
        return dumps(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _from_json(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for arm in typing.get_args(hint):
            if arm is not type(None):
                try:
                    return _from_json(arm, value)
                except (TypeError, ValueError):
                    continue
        return value
    if origin is tuple:
        return tuple(_from_json(a, v) for a, v in zip(typing.get_args(hint), value, strict=False))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def _build(cls: type[Any], data: dict[str, Any], skip: frozenset[str] = frozenset()) -> Any:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init} - skip
    unknown = set(data) - names - skip
    if unknown:
        raise CodecError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    return cls(**{k: _from_json(hints[k], v) for k, v in data.items() if k in names})


def entity_to_dict(entity: model.Structure | model.Device) -> dict[str, Any]:
    return {"type": type(entity).__name__, **to_json(entity)}


def entity_from_dict(data: dict[str, Any]) -> model.Structure | model.Device:
    fields = dict(data)
    cls = ENTITY_TYPES.get(str(fields.pop("type", "")))
    if cls is None:
        raise CodecError(f"unknown entity type {data.get('type')!r}")
    entity: model.Structure | model.Device = _build(cls, fields)
    return entity


def home_to_dict(home: model.Home) -> dict[str, Any]:
    return {
        "account": home.account,
        "structures": [entity_to_dict(s) for s in home.structures.values()],
        "devices": [entity_to_dict(d) for d in home.devices.values()],
    }


def home_from_dict(data: dict[str, Any]) -> model.Home:
    structures = [entity_from_dict(s) for s in data.get("structures", [])]
    devices = [entity_from_dict(d) for d in data.get("devices", [])]
    return model.Home(
        str(data["account"]),
        {s.id: s for s in structures if isinstance(s, model.Structure)},
        {d.id: d for d in devices if isinstance(d, model.Device)},
    )


def event_to_dict(event: Event) -> dict[str, Any]:
    data: dict[str, Any] = {"event": event.name}
    for name in _field_names(type(event)):
        data[name] = to_json(getattr(event, name))
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    fields = dict(data)
    name = str(fields.pop("event", ""))
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise CodecError(f"unknown event {name!r}")
    context = fields.pop("context", None)
    event: Event = _build(cls, fields, frozenset({"context"}))
    if context:
        event = dataclasses.replace(event, context=Context(**context))
    return event


def event_json(event: Event, at: str | None = None) -> str:
    """`dumps_plain(event_to_dict(event))`, the same text, without the dict: the journal
    writes one per event. Each class gets a writer compiled on first use, which reads the
    fields in order and writes the common values (str, None, numbers, datetimes, enums, the
    context) directly; any other value goes through `to_json` and `dumps`. `at`: the JSON
    text of `event.at`, if the caller has it already."""
    writer = _WRITERS.get(type(event))
    if writer is None:
        writer = _WRITERS[type(event)] = _compile_writer(type(event), event.name)
    return writer(event, at)


_WRITERS: dict[type[Any], Callable[[Any, str | None], str]] = {}
_STRING: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _compile_writer(cls: type[Any], name: str | None) -> Callable[[Any, str | None], str]:
    """`def write(e, at)` joining the JSON text of `cls`'s fields; `name` leads as "event",
    `at` (if not None) is the text of the field `at`."""
    parts: list[str] = []
    lead = "{" if name is None else "{" + f'"event": {_STRING(name)}, '
    for i, field_name in enumerate(_field_names(cls)):
        key = ("" if i == 0 else ", ") + f"{_STRING(field_name)}: "
        parts.append(repr(lead + key if i == 0 else key))
        # a str or None (most fields) is written inline; anything else by `_text`
        value = (
            f"(S(v) if (v := e.{field_name}).__class__ is str else 'null' if v is None else T(v))"
        )
        parts.append(f"(at if at is not None else {value})" if field_name == "at" else value)
    if not parts:
        parts.append(repr(lead))
    parts.append(repr("}"))
    scope: dict[str, Any] = {"S": _STRING, "T": _text}
    exec(f"def write(e, at):\n    return ''.join(({', '.join(parts)}))", scope)
    writer: Callable[[Any, str | None], str] = scope["write"]
    return writer


def _text(value: Any) -> str:
    """The JSON text `dumps_plain(to_json(value))` gives."""
    write = _TEXT_BY_CLASS.get(value.__class__)
    if write is not None:
        return write(value)
    if isinstance(value, enum.Enum):
        cls = type(value)
        plain = all(type(member.value) is str for member in cls)
        _TEXT_BY_CLASS[cls] = _str_enum_text if plain else _enum_text
        return _text(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        writer = _compile_writer(type(value), None)
        _TEXT_BY_CLASS[type(value)] = write = lambda v: writer(v, None)
        return write(value)
    return dumps_plain(to_json(value))


def _enum_text(value: enum.Enum) -> str:
    return _text(value.value)


def _str_enum_text(value: enum.Enum) -> str:
    return _STRING(value.value)


def _float_text(value: float) -> str:
    return float.__repr__(value) if math.isfinite(value) else "null"  # as `dumps` writes it


_TEXT_BY_CLASS: dict[type[Any], Callable[[Any], str]] = {
    str: _STRING,
    type(None): lambda _: "null",
    bool: lambda value: "true" if value else "false",
    int: int.__repr__,
    float: _float_text,
    datetime: lambda value: f'"{value.isoformat()}"',  # ASCII, nothing to escape
}


# The names the engine's replay and timers use.
event_to_json = event_to_dict
event_from_json = event_from_dict
