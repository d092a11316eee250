"""roost installed the way a user installs it: the wheel, in a fresh venv outside the
repository. `roost demo` runs there (the example rules come with the wheel), `roost init`
writes a starter that `roost check` accepts, and the unit file is in the package."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*command: str | Path, cwd: Path, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "VIRTUAL_ENV"))}
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_the_wheel_works_on_its_own(tmp_path: Path) -> None:
    wheels, home = tmp_path / "wheels", tmp_path / "elsewhere"
    home.mkdir()
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, REPO, cwd=home)
    (wheel,) = wheels.glob("roost-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    run(bin_dir / "pip", "install", "-q", wheel, cwd=home)

    demo = run(bin_dir / "roost", "demo", "--speed", "4", cwd=home)
    assert "demo passed" in demo, demo
    assert not (home / "rules").exists()

    assert "wrote" in run(bin_dir / "roost", "init", "starter", cwd=home)
    checked = run(bin_dir / "roost", "check", "--config", home / "starter" / "roost.toml", cwd=home)
    assert "0 error(s)" in checked
    unit = run(
        bin_dir / "python",
        "-c",
        "from roost.cli.starter import example_file; print(example_file('roost.service'))",
        cwd=home,
    )
    assert "ExecStart=" in unit
