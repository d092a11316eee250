"""`roost run` has its TOML rule files checked in a child process: the daemon compiles the
checked rules and never imports pydantic for them; a broken file still names its file and
line while the other rules run; a checker that dies is an error for each TOML file, and a
reload then keeps the rules that were running."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from roost.cli.entry import _runtime_or_exit
from roost.config.settings import Settings
from roost.engine.loader import check_in_child
from roost.host import faults
from roost.service.runtime import Runtime
from tests.test_service_lifecycle import AWAY_ECO, daemon, wait_for

pytestmark = pytest.mark.anyio

BROKEN = """\
# a rule with a wrong type, and one that is fine
[[rule]]
name = "too hot"
on = { event = "presence", to = "away" }
do = [{ action = "thermostat.set_heat", celsius = "twenty" }]

[[rule]]
name = "co alert"
on = { event = "co", to = ["warning", "emergency"] }
do = [{ action = "notify", title = "CO {event.new}", priority = "urgent" }]
"""
BROKEN_AT = "broken.toml:5: rule 'too hot': do[0].celsius: Input should be a valid number"
AWAY = """\
[[rule]]
name = "away note"
on = { event = "presence", to = "away" }
do = [{ action = "notify", title = "away now" }]
"""
CHILD_DIED = "not checked: the TOML rule checker failed (ChildFailed"

# The validating side: what must never be imported by the daemon's rule load.
VALIDATION = ("roost.engine.toml_check", "roost.rules.toml_schema")

PROBE = """
import json, sys
from pathlib import Path
import anyio
from roost.cli.entry import _runtime_or_exit, _settings_or_exit
from roost.service.runtime import Runtime

daemon = sys.argv[2] == "daemon"
settings = _settings_or_exit(Path(sys.argv[1]), in_child=daemon)
runtime = _runtime_or_exit(settings) if daemon else Runtime(settings)
before = set(sys.modules)
started = runtime.load_rules()
reloaded = anyio.run(runtime.reload_rules)
print(json.dumps({
    "imported": sorted(set(sys.modules) - before),
    "pydantic": sorted(n for n in sys.modules if n.split(".")[0].startswith("pydantic")),
    "rules": sorted(runtime.engine.rules),
    "errors": [str(e) for e in (*started.errors, *reloaded.errors)],
}))
"""


def probe(tmp_path: Path, mode: str) -> dict[str, list[str]]:
    """A start and a reload of the rules, as `roost run` has its settings and makes its
    runtime ("daemon"), or with both checked in-process ("here"): the modules the rule
    loads imported, every pydantic module in the process, the rules, the errors."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "away.toml").write_text(AWAY)
    (rules / "away_eco.py").write_text(AWAY_ECO)
    config = tmp_path / "roost.toml"
    config.write_text(f'[daemon]\nrules_dir = "{rules}"\nstate_dir = "{tmp_path / mode}"\n')
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(config), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answer: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return answer


def validation_in(imported: list[str]) -> list[str]:
    return [name for name in imported if "pydantic" in name or name in VALIDATION]


def test_the_daemons_rule_load_imports_no_pydantic(tmp_path: Path) -> None:
    found = probe(tmp_path, "daemon")
    assert found["errors"] == []
    assert found["rules"] == ["away note", "eco_when_away"]
    assert validation_in(found["imported"]) == []
    assert found["pydantic"] == []  # nor anything else of `roost run` before it


def test_the_probe_sees_a_check_made_in_process(tmp_path: Path) -> None:
    """The same load with the in-process check (what `roost check` and tests use) imports
    the validation: the probe above would see it."""
    found = probe(tmp_path, "here")
    assert found["rules"] == ["away note", "eco_when_away"]
    assert set(VALIDATION) <= set(validation_in(found["imported"]))
    assert "pydantic" in found["pydantic"]


async def test_roost_run_names_a_broken_toml_file_and_runs_the_other_rules(
    tmp_path: Path,
) -> None:
    rules = {"broken.toml": BROKEN, "away.toml": AWAY, "away.py": AWAY_ECO}
    async with daemon(tmp_path, rules) as bed:
        status = json.loads((await bed.roost("status", "--json")).stdout)
        assert BROKEN_AT in bed.log.read_text()
        names = json.dumps(status)
        for running in ("co alert", "away note", "eco_when_away"):
            assert f'"{running}"' in names
        assert '"too hot"' not in names
        bed.home.set_away("structure-home", True)
        received = await bed.sink.wait_for(1)
        assert received[0]["title"] == "away now"  # a TOML rule the child checked
        await wait_for(lambda: bed.home.thermostat("thermostat-living-room").mode == "eco")

        # A reload that breaks a running rule keeps its previous version.
        (bed.rules / "away.toml").write_text(AWAY.replace('to = "away"', 'to = "gone"'))
        readies = bed.notify.count("READY=1")
        bed.process.send_signal(signal.SIGHUP)
        await bed.notify.wait("READY=1", readies + 1)
        log = bed.log.read_text()
        assert "away.toml:3: rule 'away note': event 'presence' never has to='gone'" in log
        assert "its previous version keeps running" in log
        assert '"away note"' in (await bed.roost("status", "--json")).stdout
        assert await bed.stop() == 0


async def test_a_checker_that_dies_at_start_leaves_the_python_rules_running(
    tmp_path: Path,
) -> None:
    rules = {"away.toml": AWAY, "away.py": AWAY_ECO}
    async with daemon(tmp_path, rules, env={faults.ENV: "toml_check"}) as bed:
        status = (await bed.roost("status", "--json")).stdout
        assert '"eco_when_away"' in status
        assert '"away note"' not in status
        assert f"away.toml:0: {CHILD_DIED}" in bed.log.read_text()
        assert await bed.stop() == 0


def daemon_runtime(tmp_path: Path) -> Runtime:
    """The runtime as `roost run` makes it, on a rule directory with a broken TOML file."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "away.toml").write_text(AWAY)
    (tmp_path / "rules" / "broken.toml").write_text(BROKEN)
    settings = Settings()
    settings.daemon.rules_dir = tmp_path / "rules"
    settings.daemon.state_dir = tmp_path / "state"
    runtime = _runtime_or_exit(settings)
    assert runtime.check_rules is check_in_child
    started = runtime.load_rules()
    assert [str(e) for e in started.errors] == [f"{tmp_path / 'rules' / BROKEN_AT} (not 'twenty')"]
    assert sorted(runtime.engine.rules) == ["away note", "co alert"]
    return runtime


async def test_a_reload_is_checked_beside_the_event_loop(tmp_path: Path) -> None:
    runtime = daemon_runtime(tmp_path)
    (tmp_path / "rules" / "away.toml").write_text(AWAY.replace("away now", "changed"))
    before = runtime.engine.rules["away note"].fingerprint
    turns = 0

    async def turn() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(turn)
        with anyio.fail_after(60):
            reloaded = await runtime.reload_rules()  # a fresh interpreter: >= ~0.3 s
        tg.cancel_scope.cancel()
    assert turns >= 5, "the event loop stood still while the child checked the files"
    assert [e.path.name for e in reloaded.errors] == ["broken.toml"]
    assert runtime.engine.rules["away note"].fingerprint != before
    await runtime.store.aclose()


async def test_a_checker_that_dies_on_a_reload_keeps_the_running_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = daemon_runtime(tmp_path)
    before = runtime.engine.rules["away note"].fingerprint
    # The reload's child is a fresh interpreter: it reads the kill point from its environment.
    monkeypatch.setenv(faults.ENV, "toml_check")
    (tmp_path / "rules" / "away.toml").write_text(AWAY.replace("away now", "changed"))
    with anyio.fail_after(60):
        reloaded = await runtime.reload_rules()
    assert [(e.path.name, e.line) for e in reloaded.errors] == [
        ("away.toml", 0),
        ("broken.toml", 0),
    ]
    assert all(e.message.startswith(CHILD_DIED) for e in reloaded.errors)
    assert sorted(runtime.engine.rules) == ["away note", "co alert"]
    assert runtime.engine.rules["away note"].fingerprint == before
    await runtime.store.aclose()
