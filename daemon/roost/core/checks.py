"""Checks a settings schema attaches to a field without importing pydantic.

    level: Annotated[str, Before(str.lower)]
    port: Annotated[int, After(check_port)]

The daemon's settings are plain dataclasses; pydantic validates them in the process that
reads the configuration (`roost.config`), and it reads these markers there. A check raises
ValueError with a message for the person who wrote the file. Checks that span fields go in
the dataclass's `__post_init__`, which pydantic runs after the fields are valid; one that is
about one field raises `FieldError`, so the error names that field (and its line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class FieldError(ValueError):
    """A `__post_init__` check that failed on some of the fields: each error names its field
    (and the loader its line). `more` are further (field, message) pairs."""

    def __init__(self, field: str, message: str, *more: tuple[str, str]) -> None:
        self.problems = [(field, message), *more]
        text = "; ".join(f"{name}: {text}" for name, text in self.problems)
        super().__init__(text if more else message)

    def __reduce__(self) -> tuple[type[FieldError], tuple[Any, ...]]:
        (field, message), *more = self.problems
        return FieldError, (field, message, *more)


class After:
    """Run `check` on the field's value once it has its type; its result is the value."""

    __slots__ = ("check",)

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_after_validator_function(self.check, handler(source))


class Before:
    """Run `check` on the value as written, before it is given its type."""

    __slots__ = ("check",)

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self.check, handler(source))
