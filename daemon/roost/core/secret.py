"""A secret setting (token, password, apprise URL): a string that never shows itself.

The daemon holds its settings as plain dataclasses and never imports pydantic (issue 20's
idle RSS: pydantic is ~10 MiB). This is the daemon's `SecretStr`: masked in repr and str,
picklable (settings reach the daemon pickled from the process that validated them), and
validated by pydantic from a string when a settings schema names it.
"""

from __future__ import annotations

from typing import Any

MASK = "**********"


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret is a string, not {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})" if self._value else "Secret('')"

    def __str__(self) -> str:
        return MASK if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return Secret, (self._value,)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        """Only pydantic calls this (in the process that validates settings): a Secret
        from a string, or a Secret as it is; dumped as the mask, as SecretStr is."""
        from pydantic_core import core_schema

        from_str = core_schema.no_info_after_validator_function(cls, core_schema.str_schema())
        return core_schema.json_or_python_schema(
            json_schema=from_str,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_str]),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )
