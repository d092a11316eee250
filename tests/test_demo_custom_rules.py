"""`roost demo --rules DIR` narrates a custom rule set without judging it by the stock
scenario's checks (which describe the example rules)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.rulekit import rule_file

ROOT = Path(__file__).resolve().parent.parent


def demo(rules: Path) -> subprocess.CompletedProcess[str]:
    """`roost demo` as its own process (it configures logging for the whole process)."""
    args = ["demo", "--rules", str(rules), "--speed", "10", "--vendor", "nest_wwn"]
    return subprocess.run(
        [sys.executable, "-m", "roost", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_a_custom_rule_set_is_narrated_not_failed(tmp_path: Path) -> None:
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
    result = demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "my own CO rule: warning" in out
    assert "custom rules: the stock scenario's checks do not apply" in out
    assert "FAILED" not in out


def test_a_broken_custom_rule_is_shown_and_fails_the_demo(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "bad.toml",
        '[[rule]]\nname = "bad"\non = { event = "co", to = "gone" }\n'
        'do = [{ action = "notify", title = "x" }]\n',
    )
    result = demo(tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'bad.toml'}:3: rule 'bad': event 'co' never has to='gone'" in (
        result.stdout
    )
