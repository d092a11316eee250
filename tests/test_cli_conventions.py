"""The conventions every `roost` command follows: one way to find the settings file, no
database created by a command that only looks, `--json` for machines, and `roost init`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from roost.cli.entry import main
from tests.rulekit import rule_file
from tests.test_replay import RULES, record


def roost(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    clean.pop("CREDENTIALS_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "roost", *args],
        cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip


def test_a_missing_explicit_settings_file_is_an_error(tmp_path: Path) -> None:
    for command in (["status"], ["outbox"], ["check"], ["trace"], ["events"], ["run"]):
        done = roost(*command, "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
        assert done.returncode == 1, command
        assert f"--config: no settings file at {tmp_path / 'nope.toml'}" in done.stderr
    done = roost("outbox", cwd=tmp_path, env={"ROOST_CONFIG": str(tmp_path / "gone.toml")})
    assert done.returncode == 1
    assert "$ROOST_CONFIG: no settings file at" in done.stderr


def test_roost_config_names_the_file_when_no_option_does(tmp_path: Path) -> None:
    rules = tmp_path / "my-rules"
    rules.mkdir()
    rule_file(rules, "r.toml", RULES)
    config = tmp_path / "roost.toml"
    config.write_text(f'[daemon]\nrules_dir = "{rules}"\n', encoding="utf-8")
    done = roost("check", cwd=tmp_path, env={"ROOST_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr
    assert "2 rule(s) in 1 file(s); 0 error(s)" in done.stdout
    other = tmp_path / "other.toml"
    other.write_text(f'[daemon]\nrules_dir = "{tmp_path / "none"}"\n', encoding="utf-8")
    done = roost("check", "--config", str(other), cwd=tmp_path, env={"ROOST_CONFIG": str(config)})
    assert "0 rule(s)" in done.stdout  # --config comes first


def test_looking_at_the_outbox_creates_no_database(tmp_path: Path) -> None:
    done = roost("outbox", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    assert list(tmp_path.iterdir()) == []
    done = roost("outbox", "--retry", "k1", cwd=tmp_path)
    assert done.returncode == 1
    assert "no database at" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rule_file(tmp_path, "good.toml", RULES)
    rule_file(tmp_path, "bad.toml", '[[rule]]\nname = "b"\n')
    assert main(["check", "--rules", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["rules"] == 2
    assert {e["file"] for e in report["errors"]} == {str(tmp_path / "bad.toml")}
    assert {"line": 1, "message": "rule 'b': missing 'do'"}.items() <= next(
        e for e in report["errors"] if e["message"].endswith("'do'")
    ).items()


def test_replay_json(tmp_path: Path) -> None:
    events = anyio.run(record, tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file(rules, "r.toml", RULES)
    # its own process: the command sets up logging for a terminal
    done = roost("replay", str(events), "--rules", str(rules), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(c["command"] for c in report["commands"]) == ["Bedroom: eco on", "Den: eco on"]
    assert {c["outcome"] for c in report["commands"]} == {"dry_run"}
    assert [(n["title"], n["tags"]) for n in report["notifications"]] == [
        ("CO warning", ["urgent"])
    ]
    assert report["skipped"] == 1


def test_init_writes_a_starter_and_never_overwrites(tmp_path: Path) -> None:
    done = roost("init", "home", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = tmp_path / "home" / "roost.toml"
    assert f'rules_dir = "{tmp_path / "home" / "rules"}"' in config.read_text()
    assert not list((tmp_path / "home" / "rules").glob("test_*"))
    checked = roost("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    config.write_text("# mine\n")
    again = roost("init", "home", cwd=tmp_path)
    assert again.returncode == 1
    assert "nothing was written" in again.stdout
    assert config.read_text() == "# mine\n"
