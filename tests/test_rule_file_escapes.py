"""A Python rule file cannot end or freeze the daemon while it is imported: `sys.exit()`
at its top level, or a loop that never ends there, is that file's error (file and line),
and every other rule loads and keeps running.

Before the fix `sys.exit(0)` in a rule file ended `roost check` with status 0 and no
output, and a SIGHUP reload that met it ended `roost run` with status 0 (which systemd's
Restart=on-failure does not restart); a file looping at import hung the start (never
READY) or, on a reload, the event loop and every alarm with it (an audit of hostile input
found both)."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from roost.engine import loader
from roost.engine.loader import load_directory
from tests.faults.harness import RULES, fault_bed, wait_for

ALARM = "alarm-hallway"
GOOD = """
[[rule]]
name = "stays"
on = { event = "co", to = "emergency" }
do = [{ action = "notify", title = "still here" }]
"""
ESCAPES = {
    "sys_exit.py": ("import sys\n\nsys.exit(0)\n", {3}, "SystemExit"),
    "exit_message.py": ("raise SystemExit('bye')\n", {1}, "SystemExit: bye"),
    "spins.py": ("x = 0\nwhile True:\n    x += 1\n", {2, 3}, "import took longer than"),
    "sleeps.py": ("import time\n\ntime.sleep(3600)\n", {3}, "import took longer than"),
}


@pytest.mark.parametrize("name", list(ESCAPES))
def test_an_escaping_rule_file_is_its_own_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(loader, "IMPORT_BUDGET_S", 0.3)
    source, lines, message = ESCAPES[name]
    (tmp_path / "good.toml").write_text(GOOD)
    (tmp_path / name).write_text(source)
    started = time.monotonic()
    result = load_directory(tmp_path)
    assert time.monotonic() - started < 5
    assert [r.name for r in result.rules] == ["stays"]
    [error] = result.errors
    assert error.path.name == name
    assert error.line in lines
    assert message in error.message
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL  # the loader left no trace


@pytest.mark.anyio
async def test_a_reload_meeting_sys_exit_keeps_the_daemon_and_its_alarms(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    async with fault_bed(tmp_path, rules, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        (rules / "quits.py").write_text("import sys\n\nsys.exit(0)\n")
        assert bed.daemon.process is not None
        bed.daemon.process.send_signal(signal.SIGHUP)
        await wait_for(lambda: '"reloaded"' in bed.daemon.log(), timeout_s=15)
        assert "quits.py:3: SystemExit" in bed.daemon.log()
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: bed.titles()["CO emergency in the Hallway"] == 1, timeout_s=15)
        assert bed.daemon.process is not None
        assert bed.daemon.process.returncode is None
