"""docs/reference.md is generated from the code and current."""

from __future__ import annotations

from pathlib import Path

from roost.core.events import EVENT_TYPES
from roost.rules import toml_model as rule_model
from roost.rules.reference import reference

DOC = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
REGENERATE = ".venv/bin/python -m roost.rules.reference > docs/reference.md"


def test_the_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        f"docs/reference.md is stale: run `{REGENERATE}`"
    )


def test_the_reference_names_every_event_action_and_vendor() -> None:
    text = reference()
    for name in EVENT_TYPES:
        assert f"| `{name}` |" in text
    for action in rule_model.ACTION_NAMES:
        assert f"| `{action}` |" in text
    assert "| event | nest_web | nest_wwn | netatmo | sdm |" in text
    # SDM has no smoke/CO alarms and no home/away (README, "Google SDM").
    assert "| `co` | yes | yes | yes | — |" in text
    assert "| `presence` | yes | yes | yes | — |" in text
