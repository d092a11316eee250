"""The JSON Schema shipped for editors is generated from the rule model and is current."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from roost.rules.toml_schema import schema_text, validate_file

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "docs" / "roost-rules.schema.json"


def test_the_shipped_schema_is_current() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), (
        "docs/roost-rules.schema.json is stale: run "
        "`.venv/bin/python -m roost.rules.toml_schema > docs/roost-rules.schema.json`"
    )


@pytest.mark.parametrize("path", sorted((ROOT / "rules").glob("*.toml")), ids=lambda p: p.name)
def test_the_example_rules_fit_the_model(path: Path) -> None:
    validate_file(tomllib.loads(path.read_text(encoding="utf-8")))
