"""Reloading rule files: unchanged files keep their state, changed ones start afresh, a
file that no longer loads keeps its previous version running; over the control socket too."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from roost.cli.entry import main
from roost.config.settings import Settings
from roost.core.codec import event_to_dict
from roost.core.events import CoAlarm
from roost.core.model import AlarmState
from roost.engine.loader import keep_previous, load_directory
from roost.service.runtime import Runtime
from roost.store.sqlite import JournalEntry
from roost.testing import simulate
from roost.testing.sandbox import SimulatedHome
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

COOL = """
from roost import rule, when

@rule(on=when("motion"), cooldown="1h")
async def porch_light(event, home):
    await home.notify("motion")
"""

HOLD = """
[[rule]]
name = "eco when away"
on = { event = "presence", to = "away", hold = "10m" }
do = [{ action = "notify", title = "eco" }]
"""


def reload(home: SimulatedHome, directory: Path) -> list[str]:
    result = load_directory(directory)
    merged = keep_previous(result, list(home.engine.rules.values()))
    home.engine.load(merged.rules)
    return [str(e) for e in result.errors]


async def test_unchanged_files_keep_cooldowns_and_pending_holds(tmp_path: Path) -> None:
    rule_file(tmp_path, "porch.py", COOL)
    rule_file(tmp_path, "away.toml", HOLD)
    async with simulate(tmp_path, HOME) as home:
        await home.motion("Front Door")
        await home.set("House", presence="away")
        await home.advance("5m")
        rule_file(tmp_path, "new.py", COOL.replace("porch_light", "new_rule"))
        assert reload(home, tmp_path) == []
        await home.motion("Front Door")  # porch_light is still cooling down; new_rule runs
        await home.advance("5m")  # the hold started before the reload completes
        assert home.titles() == ["motion", "motion", "eco"]
        assert home.traces("porch_light")[-1].reason.startswith("cooldown")


async def test_a_changed_file_starts_afresh(tmp_path: Path) -> None:
    rule_file(tmp_path, "porch.py", COOL)
    rule_file(tmp_path, "away.toml", HOLD)
    async with simulate(tmp_path, HOME) as home:
        await home.motion("Front Door")
        await home.set("House", presence="away")
        rule_file(tmp_path, "away.toml", HOLD.replace('"eco"', '"eco now"'))
        rule_file(tmp_path, "porch.py", COOL.replace('notify("motion")', 'notify("seen")'))
        assert reload(home, tmp_path) == []
        await home.advance("20m")
        await home.motion("Front Door")
        assert home.titles() == ["motion", "seen"]  # no cooldown left, the hold was dropped
        held = [t for t in home.traces("eco when away") if t.result == "cancelled"]
        assert held
        assert held[0].reason == "the rule was reloaded"


async def test_a_broken_file_keeps_its_previous_version_running(tmp_path: Path) -> None:
    rule_file(tmp_path, "porch.py", COOL)
    rule_file(tmp_path, "away.toml", HOLD)
    async with simulate(tmp_path, HOME) as home:
        await home.motion("Front Door")
        (tmp_path / "porch.py").write_text("from roost import rule\n\ndef broken(:\n")
        (tmp_path / "away.toml").write_text('[[rule]]\nname = "x"\non = {\n')
        errors = reload(home, tmp_path)
        assert errors == [
            f"{tmp_path / 'away.toml'}:3: TOML syntax: " + errors[0].split("TOML syntax: ")[1],
            f"{tmp_path / 'porch.py'}:3: syntax error: invalid syntax",
        ]
        assert sorted(home.engine.rules) == ["eco when away", "porch_light"]
        await home.motion("Front Door")  # the old version, with its cooldown
        await home.advance("1h")
        await home.motion("Front Door")
        await home.set("House", presence="away")
        await home.advance("10m")
        assert home.titles() == ["motion", "motion", "eco"]


def settings_for(tmp_path: Path) -> Settings:
    settings = Settings()
    settings.daemon.rules_dir = tmp_path / "rules"
    settings.daemon.state_dir = tmp_path / "state"
    return settings


async def test_roost_reload_and_trace_talk_to_the_running_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules").mkdir()
    rule_file(
        tmp_path / "rules",
        "boot.py",
        """
        from roost import rule, startup, when

        @rule(on=startup())
        async def hello(event, home):
            await home.notify("started", tags=["log"])

        @rule(on=when("co", to="emergency"))
        async def co_emergency(event, home):
            pass
        """,
    )
    settings = settings_for(tmp_path)
    runtime = Runtime(settings)
    runtime.load_rules()
    socket = settings.daemon.socket_path()
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        with anyio.fail_after(10):
            while not socket.exists():
                await anyio.sleep(0.01)
        assert stat.S_IMODE(socket.stat().st_mode) == 0o600

        args = ["trace", "hello", "--socket", str(socket)]
        assert await anyio.to_thread.run_sync(main, args) == 0
        out = capsys.readouterr().out
        assert "hello  RAN" in out
        assert "trigger   startup" in out
        assert "notify 'started'" in out

        rule_file(tmp_path / "rules", "broken.toml", '[[rule]]\nname = "b"\n')
        assert await anyio.to_thread.run_sync(main, ["reload", "--socket", str(socket)]) == 1
        captured = capsys.readouterr()
        assert f"{tmp_path / 'rules' / 'broken.toml'}:1: rule 'b': missing 'do'" in captured.err
        assert f"{tmp_path / 'rules' / 'broken.toml'}:1: rule 'b': missing 'on'" in captured.err
        assert "2 rule(s) running; 2 error(s)" in captured.out
        assert "previous version" not in captured.out  # there was none

        args = ["trace", "--json", "--socket", str(socket)]
        assert await anyio.to_thread.run_sync(main, args) == 0
        assert '"rule": "hello"' in capsys.readouterr().out
        assert await anyio.to_thread.run_sync(main, ["trace", "nope", "--socket", str(socket)]) == 1
        assert "no rule 'nope'" in capsys.readouterr().err

        # A rule that never ran: trace says whether a matching event was ever seen.
        args = ["trace", "co_emergency", "--socket", str(socket)]
        assert await anyio.to_thread.run_sync(main, args) == 0
        out = capsys.readouterr().out
        assert "no traces yet for 'co_emergency'" in out
        assert "no 'co' event has been seen" in out
        warning = CoAlarm(
            id="e1",
            at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            account="a",
            device="d",
            old=AlarmState.OK,
            new=AlarmState.WARNING,
        )
        await runtime.store.journal_append(
            [JournalEntry(warning.at, "co", "a", event_to_dict(warning))]
        )
        assert await anyio.to_thread.run_sync(main, args) == 0
        out = capsys.readouterr().out
        assert (
            "1 'co' event(s) seen, the last at 2026-01-05 09:00:00 UTC, none matching "
            "co to=emergency" in out
        )
        tg.cancel_scope.cancel()
    assert not socket.exists()


def test_roost_trace_without_a_daemon_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trace", "--socket", str(tmp_path / "none.sock")]) == 1
    assert "cannot reach the daemon" in capsys.readouterr().err
