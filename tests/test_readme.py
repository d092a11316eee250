"""The rule examples in the README load as written."""

from __future__ import annotations

import re
from pathlib import Path

from roost.loader import load_directory

README = Path(__file__).parent.parent / "README.md"


def test_readme_rule_examples_load(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```(python|toml)\n(.*?)```", text, re.DOTALL)
    assert len(blocks) >= 2
    for number, (language, body) in enumerate(blocks):
        suffix = ".py" if language == "python" else ".toml"
        (tmp_path / f"example_{number}{suffix}").write_text(body, encoding="utf-8")
    result = load_directory(tmp_path)
    assert [str(e) for e in result.errors] == []
    assert {"eco_when_away", "co alert", "warm up when someone comes home to a cold house"} <= {
        r.name for r in result.rules
    }
