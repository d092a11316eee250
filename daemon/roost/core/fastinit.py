"""A cheaper `__init__` for the frozen slots dataclasses built on the hot path (events).

A frozen dataclass's generated `__init__` sets each field with `object.__setattr__(self,
name, value)`: a global and an attribute lookup and a by-name slot search per field, ~4×
the cost of a plain class. `fast_init` replaces it with one that calls each slot's own
descriptor (`Cls.field.__set__`), which skips the frozen `__setattr__` just as the
original does. Signature, defaults, default factories, `kw_only` and `__post_init__` stay
as the dataclass declared them; the class stays a frozen dataclass (equality, hashing,
`fields`, `replace`, repr are untouched).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

C = TypeVar("C", bound=type[Any])
T = TypeVar("T")

_NO_DEFAULT = dataclasses.MISSING


class _Factory:
    """The default of a field with a default factory (shown as the dataclass shows it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def fast_init(cls: C) -> C:
    """Give the frozen slots dataclass `cls` the descriptor-setting `__init__`."""
    params = dataclasses.fields(cls)
    if not cls.__dataclass_params__.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen slots dataclass")
    scope: dict[str, Any] = {"_FACTORY": _FACTORY}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for f in params:
        scope[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if not f.init:
            if f.default_factory is not _NO_DEFAULT:
                scope[f"_factory_{f.name}"] = f.default_factory
                body.append(f"    _set_{f.name}(self, _factory_{f.name}())")
            elif f.default is not _NO_DEFAULT:
                scope[f"_default_{f.name}"] = f.default
                body.append(f"    _set_{f.name}(self, _default_{f.name})")
            continue
        if f.default_factory is not _NO_DEFAULT:
            scope[f"_factory_{f.name}"] = f.default_factory
            param = f"{f.name}=_FACTORY"
            body.append(
                f"    _set_{f.name}(self, _factory_{f.name}() if {f.name} is _FACTORY "
                f"else {f.name})"
            )
        else:
            if f.default is not _NO_DEFAULT:
                scope[f"_default_{f.name}"] = f.default
                param = f"{f.name}=_default_{f.name}"
            else:
                param = f.name
            body.append(f"    _set_{f.name}(self, {f.name})")
        (keyword if f.kw_only else positional).append(param)
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({signature}) -> None:\n" + ("\n".join(body) or "    pass") + "\n"
    exec(source, scope)  # generated from the class's own field list
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init
    return cls


# ---- building in a stand-in -------------------------------------------------------------
# Cheaper still than the descriptor setters, for the objects made on every rule run (an
# outcome event, a command, a device's copy): the instance is built in a stand-in class, a
# subclass of the frozen class with no slots of its own and the plain `__setattr__`, where
# each field is a plain attribute store; setting its `__class__` to the frozen class then
# makes it one (the layout is the same). That is half the cost per field, plus one
# `__class__` store (~0.15 µs): worth it from about five fields.

_STAND_INS: dict[type[Any], type[Any]] = {}


def stand_in(cls: type[Any]) -> type[Any]:
    """The stand-in class to build an instance of the frozen slots class `cls` in."""
    found = _STAND_INS.get(cls)
    if found is None:
        if "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} is not a slots class")
        namespace = {
            "__slots__": (),
            # Both, or the slot keeps the frozen class's raising function for stores.
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__module__": cls.__module__,
            "__qualname__": f"{cls.__qualname__}.<being built>",
        }
        found = _STAND_INS[cls] = type(f"{cls.__name__}Building", (cls,), namespace)
    return found


def positional(cls: type[Any], params: tuple[str, ...] | None = None) -> Callable[..., Any]:
    """A constructor of the frozen slots dataclass `cls` taking every field positionally,
    in the declared order, built in its stand-in (what `__init__` builds, without keywords
    or a setter call per field). `params`: its parameters, when they are more than the
    fields (the extra ones unused)."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ a positional maker would skip")
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_building": stand_in(cls)}
    lines = [f"    made.{name} = {name}" for name in names]
    source = (
        f"def make({', '.join(params or names)}):\n"
        "    made = _new(_building)\n" + "\n".join(lines) + "\n"
        "    made.__class__ = _cls\n"
        "    return made\n"
    )
    exec(source, scope)  # generated from the class's own field names
    made: Callable[..., Any] = scope["make"]
    return made


def positional_pair(
    first: type[Any], second: type[Any], params: tuple[str, ...], second_id: str
) -> Callable[..., Any]:
    """A function `pair(out, *params)` that builds an instance of `first` and one of
    `second` (frozen slots dataclasses whose fields are all among `params`, in either
    order) as `positional` would, and appends both to `out`, in one call: the second's `id`
    is the expression `second_id` (of the parameters), its other fields the parameters of
    the same names."""
    scope: dict[str, Any] = {"_new": object.__new__}
    lines: list[str] = []
    for n, cls in enumerate((first, second)):
        scope[f"_cls{n}"], scope[f"_building{n}"] = cls, stand_in(cls)
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} has a __post_init__ a positional maker would skip")
        lines.append(f"    made = _new(_building{n})")
        for f in dataclasses.fields(cls):
            if f.name not in params:
                raise TypeError(f"{cls.__name__}.{f.name} is not a parameter of the pair")
            value = second_id if n and f.name == "id" else f.name
            lines.append(f"    made.{f.name} = {value}")
        lines += [f"    made.__class__ = _cls{n}", "    out.append(made)"]
    source = f"def pair(out, {', '.join(params)}):\n" + "\n".join(lines) + "\n"
    exec(source, scope)  # generated from the classes' own field names
    made: Callable[..., Any] = scope["pair"]
    return made


def copier(cls: type[Any], names: tuple[str, ...]) -> Callable[[Any, dict[str, Any]], Any]:
    """`copy(instance, values)`: a copy of an instance of the frozen slots class `cls`
    (whose fields are `names`) with `values` (field → value) in place of its own; the
    caller checks the names first (an unknown one raises AttributeError)."""
    scope: dict[str, Any] = {
        "_new": object.__new__,
        "_cls": cls,
        "_building": stand_in(cls),
        "_setattr": setattr,
    }
    lines = [f"    made.{name} = entity.{name}" for name in names]
    source = (
        "def copy(entity, values):\n"
        "    made = _new(_building)\n" + "\n".join(lines) + "\n"
        "    for name, value in values.items():\n"
        "        _setattr(made, name, value)\n"
        "    made.__class__ = _cls\n"
        "    return made\n"
    )
    exec(source, scope)  # generated from the class's own field names
    copy: Callable[[Any, dict[str, Any]], Any] = scope["copy"]
    return copy


def replacer(cls: type[T]) -> Callable[[T, dict[str, Any]], T]:
    """`dataclasses.replace` for the frozen slots dataclass `cls`, cheaper: its `copier`
    over all its fields (no `__init__`, no keyword arguments). The changed names must be
    fields of `cls`."""
    names = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    return copier(cls, names)
