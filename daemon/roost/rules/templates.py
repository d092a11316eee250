"""Safe templating for notification texts written in TOML rules.

`"CO {event.new} at {device.name}"` formats event and device fields. Only public
attributes and mapping keys can be reached: no dunders, no calls, no code from config.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any


class TemplateError(ValueError):
    pass


class _SafeFormatter(string.Formatter):
    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _split(field_name)
        if first not in kwargs:
            raise TemplateError(f"unknown name {first!r} (known: {', '.join(sorted(kwargs))})")
        obj = kwargs[first]
        for is_attr, part in rest:
            obj = _step(obj, is_attr, str(part))
        return obj, first


def _split(field_name: str) -> tuple[str, Any]:
    first, rest = string._string.formatter_field_name_split(field_name)  # type: ignore[attr-defined]
    return str(first), rest


def _step(obj: Any, is_attr: bool, part: str) -> Any:
    if part.startswith("_"):
        raise TemplateError(f"{part!r} is private")
    if isinstance(obj, Mapping):
        return obj.get(part)
    if is_attr and hasattr(obj, part) and not callable(getattr(obj, part)):
        return getattr(obj, part)
    raise TemplateError(f"no field {part!r}")


_FORMATTER = _SafeFormatter()


def render(template: str, **names: Any) -> str:
    """Fill `template` from `names`; a missing field or a forbidden access raises TemplateError."""
    try:
        return _FORMATTER.vformat(template, (), names)
    except (KeyError, IndexError, AttributeError, ValueError) as exc:
        if isinstance(exc, TemplateError):
            raise
        raise TemplateError(f"bad template {template!r}: {exc}") from exc


def validate(
    template: str, names: set[str], fields: Mapping[str, frozenset[str]] | None = None
) -> None:
    """Check a template's syntax and names at load time; `fields` lists what `{name.x}` may
    name for each name (a name missing from `fields` is not checked deeper)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"bad template {template!r}: {exc}") from exc
    for _, field_name, _, _ in parsed:
        if field_name is None:
            continue
        first, rest = _split(field_name)
        if first not in names:
            raise TemplateError(f"unknown name {first!r} in {template!r}")
        _check_field(first, next(iter(rest), None), (fields or {}).get(first))


def _check_field(name: str, part: tuple[bool, Any] | None, known: frozenset[str] | None) -> None:
    if part is None or known is None:
        return
    attribute = str(part[1])
    if attribute not in known:
        shown = ", ".join(sorted(known)) or "nothing"
        raise TemplateError(f"{{{name}}} has no field {attribute!r}; it has: {shown}")
