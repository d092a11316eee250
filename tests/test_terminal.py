"""Cloud-supplied text reaches the terminal escaped: a device renamed in the vendor's app to
escape sequences, a carriage return, bidi overrides and a lone surrogate is shown safely
by `roost events` and `roost status`, while `--json` keeps the exact name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from roost.cli import terminal
from tests.faults.harness import fault_bed, wait_for

HOSTILE = "Hall\x1b[2J\x1b]0;pwned\x07\rway\u202egnp.exe\u2066\ud800\x9b31m\n> ok"
DANGEROUS = ("\x1b", "\r", "\x07", "\u202e", "\u2066", "\x9b")


def test_every_unsafe_character_is_escaped_and_printable_text_is_kept() -> None:
    shown = terminal.text(HOSTILE)
    assert not any(c in shown for c in (*DANGEROUS, "\n"))
    for escaped in ("\\x1b[2J", "\\u202e", "\\ud800"):
        assert escaped in shown
    shown.encode("utf-8")  # a lone surrogate would raise here
    assert terminal.text("Wohnzimmer ☀ 21 °C") == "Wohnzimmer ☀ 21 °C"
    assert terminal.line("a\nb\x1b") == "a\nb\\x1b"
    assert terminal.clean({"n\r": ["x\x1b", 1, None]}) == {"n\\x0d": ["x\\x1b", 1, None]}


def roost(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "roost", *args, "--config", str(config)],
        capture_output=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"},
    )


@pytest.mark.anyio
async def test_a_hostile_device_name_is_shown_safely(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.alarm("alarm-hallway").name = HOSTILE
        bed.home.changed()

        def renamed() -> bool:
            out = roost(bed.daemon.config, "events", "--json", "-n", "200").stdout
            return any(json.loads(x).get("new") == HOSTILE for x in out.splitlines())

        await wait_for(lambda: renamed(), timeout_s=30)
        shown = await anyio.to_thread.run_sync(
            lambda: roost(bed.daemon.config, "events", "-n", "200")
        )
        assert shown.returncode == 0, shown.stderr
        text = shown.stdout.decode("utf-8")  # strict: no lone surrogate was written
        assert terminal.text(HOSTILE) in text
        assert not any(c in text for c in DANGEROUS)
        status = await anyio.to_thread.run_sync(lambda: roost(bed.daemon.config, "status"))
        assert status.returncode == 0, status.stderr
        assert not any(c in status.stdout.decode("utf-8") for c in DANGEROUS)
