"""Recording events and replaying them through a rule set (dry run, virtual clock), and
`roost check` on single files for editors and pre-commit hooks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from roost.cli.entry import main
from roost.service.recorder import event_line, home_line
from roost.testing import simulate
from roost.testing.replay import read_recording, replay
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

RULES = """
[[rule]]
name = "eco after 10m away"
on = { event = "presence", to = "away", hold = "10m" }
do = [{ action = "thermostat.set_eco", target = "structure", on = true }]

[[rule]]
name = "co alert"
on = { event = "co", to = ["warning", "emergency"] }
do = [{ action = "notify", title = "CO {event.new}", tags = ["urgent"] }]
"""


async def record(tmp_path: Path) -> Path:
    """A recording made by the sandbox, as the daemon's recorder writes it."""
    lines = []
    async with simulate([], HOME, start="2026-01-05 08:00") as home:
        lines.append(home_line(home.state, "test"))
        inbox = home.bus.subscribe("recorder")
        await home.set("House", presence="away")
        await home.advance("12m")
        await home.set("Hallway", co="warning")
        await home.advance("1m")
        await home.set("House", presence="home")
        await home.advance("1m")
        await home.set("House", presence="away")
        await home.advance("3m")
        await home.set("House", presence="home")
        while len(inbox):
            lines.extend(event_line(e) for e in inbox.receive_nowait())
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


async def test_replay_prints_what_the_rules_would_have_done(tmp_path: Path) -> None:
    events = await record(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    rule_file(rules, "r.toml", RULES)
    out = io.StringIO()
    await replay(read_recording(events), rules, out)
    assert out.getvalue().splitlines() == [
        "2026-01-05T07:10:00+00:00  eco after 10m away  command  Bedroom: eco on (dry_run)",
        "2026-01-05T07:10:00+00:00  eco after 10m away  command  Den: eco on (dry_run)",
        "2026-01-05T07:12:00+00:00  co alert  notify  'CO warning'  [urgent]",
        "2 command(s), 1 notification(s), 1 trigger(s) stopped by a condition or limit",
    ]


def test_roost_replay_command(tmp_path: Path) -> None:
    """The command itself, in its own process (it sets up logging for a terminal)."""
    events = tmp_path / "events.jsonl"
    (tmp_path / "rules").mkdir()
    rule_file(tmp_path / "rules", "r.toml", RULES)
    roost = [
        sys.executable,
        "-m",
        "roost",
        "replay",
        str(events),
        "--rules",
        str(tmp_path / "rules"),
    ]
    events.write_text("", encoding="utf-8")
    done = subprocess.run(roost, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "0 command(s), 0 notification(s)" in done.stdout
    events.write_text('{"kind": "event", "event": {"event": "nope"}}\n', encoding="utf-8")
    done = subprocess.run(roost, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert f"{events}:1: unknown event 'nope'" in done.stderr


def test_roost_check_on_files_for_a_pre_commit_hook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = rule_file(tmp_path, "good.toml", RULES)
    text = "from roost import rule, cron\n\n@rule(on=cron('* * *'))\nasync def r(e, h):\n    pass\n"
    bad = rule_file(tmp_path, "bad.py", text)
    assert main(["check", str(good)]) == 0
    assert "2 rule(s) in 1 file(s); 0 error(s)" in capsys.readouterr().out
    assert main(["check", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"{bad}:3: RuleDefinitionError: cron '* * *' has 3 fields" in captured.err
