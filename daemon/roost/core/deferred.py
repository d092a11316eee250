"""Fields made when first read, for the frozen slots classes made on every rule run.

A dry run's command and outcome are read by nobody, most of them: spelling their ids and
making the outcome's context was ~6k instructions a rule run. A `Deferred` field of a
subclass (`DeferredCommand`, `DeferredOutcome`) is left unset when the object is built,
and made from the object by `make` on its first read, then kept in the field's own slot:
every read gives the same value, and an unread one costs nothing.

A data descriptor, not `__getattr__`: a class with `__getattr__` makes every attribute
read of its instances take the slow path, and the other fields are read on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def same_fields(one: object, other: object, names: Iterable[str]) -> bool:
    """The equality of a deferred class with its plain base: every field read (and made)."""
    return all(getattr(one, name) == getattr(other, name) for name in names)


class Deferred:
    """The field `name` of a frozen slots class (its slot is `cls.__dict__[name]` of the
    class that declares it), made by `make(instance)` when first read."""

    __slots__ = ("_make", "_slot")

    def __init__(self, slot: Any, make: Callable[[Any], Any]) -> None:
        self._slot = slot  # the field's member descriptor
        self._make = make

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        try:
            return self._slot.__get__(instance, owner)
        except AttributeError:  # not made yet
            value = self._make(instance)
            self._slot.__set__(instance, value)
            return value

    def __set__(self, instance: Any, value: Any) -> None:
        # Only a copy's or an unpickled object's own construction sets it (the classes
        # are frozen: their `__setattr__` refuses first).
        self._slot.__set__(instance, value)
