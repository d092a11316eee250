"""The examples in the README work as written: every rule block loads as a rule file,
every trigger kind has an example, and the test example passes with roost.testing."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from roost.engine.loader import load_directory
from roost.rules.author import Rule
from roost.rules.triggers import Cron, Every, Startup, Trigger
from roost.testing import simulate

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"


def blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    return re.findall(r"```(python|toml)\n(.*?)```", text, re.DOTALL)


def is_test(body: str) -> bool:
    return "def test_" in body


def load_examples(directory: Path) -> list[Rule]:
    for number, (language, body) in enumerate(blocks()):
        if is_test(body):
            continue
        suffix = ".py" if language == "python" else ".toml"
        (directory / f"example_{number}{suffix}").write_text(body, encoding="utf-8")
    result = load_directory(directory)
    assert [str(e) for e in result.errors] == []
    return result.rules


def test_readme_rule_examples_load(tmp_path: Path) -> None:
    assert len(blocks()) >= 2
    rules = load_examples(tmp_path)
    assert {"eco_when_away", "co alert", "warm up when someone comes home to a cold house"} <= {
        r.name for r in rules
    }


def test_every_trigger_kind_has_an_example(tmp_path: Path) -> None:
    triggers = [t for r in load_examples(tmp_path) for t in r.triggers]
    events = [t for t in triggers if isinstance(t, Trigger)]
    assert any(t.filters for t in events)
    assert any(t.threshold is not None and t.threshold.hysteresis for t in events)
    assert any(t.hold_s for t in events)
    for kind in (Cron, Every, Startup):
        assert any(isinstance(t, kind) for t in triggers), kind


@pytest.mark.anyio
async def test_the_readme_examples_behave_as_described(tmp_path: Path) -> None:
    rules = load_examples(tmp_path)
    home = {
        "structure": "Home",
        "time_zone": "Europe/London",
        "thermostats": {"Living Room": {"mode": "heat", "ambient_c": 20.0}},
        "cameras": {"Front Door": {}},
    }
    async with simulate(rules, home, start="2026-01-05 12:00") as sim:
        await sim.set("Home", presence="away")
        await sim.advance("9m")
        assert sim.actions() == ["Living Room: eco on"]  # eco_when_away, at once
        await sim.advance("1m")
        hold = sim.traces("eco_after_ten_minutes_away")[-1]
        assert hold.result == "ran"
        for _ in range(3):
            await sim.motion("Front Door")
            await sim.advance("2m")
        await sim.advance("5m")
        assert sim.titles().count("No motion at the front door for 5 minutes") == 1


@pytest.mark.anyio
async def test_the_readme_test_example_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    tests = [body for _, body in blocks() if is_test(body)]
    assert tests
    for body in tests:
        namespace: dict[str, object] = {}
        exec(compile(body, str(README), "exec"), namespace)
        for name, fn in namespace.items():
            if name.startswith("test_") and inspect.iscoroutinefunction(fn):
                await fn()
