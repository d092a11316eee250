"""The TOML rule model validated: pydantic over the plain dataclasses of `toml_model`.

This module imports pydantic; the daemon never imports it (`roost run` checks its TOML
rule files in a child process, `roost.engine.toml_check`). `schema()` is the JSON Schema
shipped for editors (taplo, Even Better TOML): `docs/roost-rules.schema.json`, regenerated
by `python -m roost.rules.toml_schema`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from pydantic import TypeAdapter

from roost.rules.toml_model import RuleFile, RuleTable, as_written


@cache
def _rule_adapter() -> TypeAdapter[RuleTable]:
    return TypeAdapter(RuleTable)


def validate_rule(table: dict[str, Any]) -> RuleTable:
    """One `[[rule]]` table as the model; raises pydantic's ValidationError."""
    return _rule_adapter().validate_python(as_written(table))


def validate_file(data: dict[str, Any]) -> RuleFile:
    """A whole rule file as the model (the example rules' test)."""
    return TypeAdapter(RuleFile).validate_python(data)


def schema() -> dict[str, Any]:
    """The JSON Schema of a rule file (for editors)."""
    out = TypeAdapter(RuleFile).json_schema(by_alias=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "roost rule file"
    return out


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
