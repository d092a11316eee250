"""`roost demo --rules DIR` narrates a custom rule set without judging it by the stock
scenario's checks (which describe the example rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.cli import main
from tests.rulekit import rule_file


def test_a_custom_rule_set_is_narrated_not_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule_file(
        tmp_path,
        "mine.toml",
        """
        [[rule]]
        name = "mine"
        on = { event = "co", to = "warning" }
        do = [{ action = "notify", title = "my own CO rule: {event.new}" }]
        """,
    )
    assert main(["demo", "--rules", str(tmp_path), "--speed", "10", "--vendor", "nest_wwn"]) == 0
    out = capsys.readouterr().out
    assert "my own CO rule: warning" in out
    assert "custom rules: the stock scenario's checks do not apply" in out
    assert "FAILED" not in out


def test_a_broken_custom_rule_is_shown_and_fails_the_demo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule_file(
        tmp_path,
        "bad.toml",
        '[[rule]]\nname = "bad"\non = { event = "co", to = "gone" }\n'
        'do = [{ action = "notify", title = "x" }]\n',
    )
    assert main(["demo", "--rules", str(tmp_path), "--speed", "10", "--vendor", "nest_wwn"]) == 1
    assert f"{tmp_path / 'bad.toml'}:3: rule 'bad': event 'co' never has to='gone'" in (
        capsys.readouterr().out
    )
