"""Rule code written against the typed API passes `mypy --strict`, and the mistakes the
untyped API let through to run time are type errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from roost import UnknownDevice
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

TYPED = Path(__file__).parent / "typed" / "typed_rules.py"

BROKEN = """
from roost import Home, PresenceChanged, rule, when


@rule(on=when(PresenceChanged, to="away"))
async def broken(event: PresenceChanged, home: Home) -> None:
    await home.notify("x", tags="urgent", priority="critical")
    for thermostat in home.thermostats():
        await thermostat.set_mode("turbo")
        print(thermostat.nme)
    home.dry_run
"""


def mypy(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache")]
    return subprocess.run(
        [*command, *map(str, files)], capture_output=True, text=True, timeout=300, check=False
    )


def test_a_typed_rule_file_passes_mypy_strict_and_mistakes_are_type_errors(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text(textwrap.dedent(BROKEN).lstrip(), encoding="utf-8")
    result = mypy(tmp_path, TYPED, broken)
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [line for line in lines if "typed_rules.py" in line], result.stdout
    found = {int(line.split(":")[1]) for line in lines}
    assert found == {6, 8, 9, 10}, result.stdout
    assert '"priority" to "notify" of "Home"' in result.stdout
    assert '"tags" to "notify" of "Home"' in result.stdout
    assert "Literal['turbo']" in result.stdout
    assert 'has no attribute "nme"' in result.stdout
    assert 'has no attribute "dry_run"' in result.stdout


@pytest.mark.anyio
async def test_the_typed_rules_run(tmp_path: Path) -> None:
    async with simulate(TYPED, HOME) as home:
        await home.set("House", presence="away")
        await home.set("Hallway", co="warning")
        assert home.titles() == ["CO warning in Hallway"]
        assert "Den: eco on" in home.actions()


@pytest.mark.anyio
async def test_handles_are_typed_and_unknown_devices_name_the_known(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.py",
        """
        from roost import rule, when

        @rule(on=when("co"))
        async def look(event, home):
            den, hallway = home.device("Den"), home.device()
            kitchen = home.find_device("Kitchen")
            await home.notify(f"{type(den).__name__} {den.mode}")
            await home.notify(f"{type(hallway).__name__} {hallway.co} {kitchen}")
            home.device("Kitchen")
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        await home.set("Hallway", co="warning")
        trace = home.traces("look")[-1]
        assert home.titles() == ["Thermostat heat", "Alarm warning None"]
    assert UnknownDevice.__name__ in trace.reason
    assert "no device 'Kitchen'; the home has: Bedroom, Den, Front Door, Hallway" in trace.reason
