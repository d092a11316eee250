"""A listener other machines can reach must be meant (`allow_remote = true`), and `roost
check` warns about it; sd_notify trouble is logged, never fatal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from roost.config.load import load_settings
from roost.config.settings import ConfigError, remote_listeners
from roost.service.systemd import sd_notify
from tests.faults.harness import fault_bed, wait_for

NETATMO = """
[[accounts]]
name = "flat"
provider = "netatmo"
client_id = "id"
client_secret = "secret"
refresh_token = "refresh"
webhook_listen = "{listen}"
{extra}
"""


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roost.toml"
    (tmp_path / "rules").mkdir(exist_ok=True)
    path.write_text(
        f'[daemon]\nrules_dir = "{tmp_path}/rules"\nstate_dir = "{tmp_path}/s"\n' + text
    )
    return path


@pytest.mark.parametrize(
    "text",
    [
        '[metrics]\nlisten = "0.0.0.0:9466"\n',
        '[metrics]\nlisten = "[::]:9466"\n',
        '[metrics]\nlisten = "192.168.1.5:9466"\n',
        NETATMO.format(listen="0.0.0.0:8765", extra=""),
    ],
)
def test_a_remote_listener_needs_allow_remote(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="allow_remote"):
        load_settings(settings_file(tmp_path, text))


@pytest.mark.parametrize(
    "text",
    [
        '[metrics]\nlisten = "127.0.0.1:9466"\n',
        '[metrics]\nlisten = "[::1]:9466"\n',
        '[metrics]\nlisten = "localhost:9466"\n',
        NETATMO.format(listen="127.0.0.2:8765", extra=""),
    ],
)
def test_loopback_listeners_need_nothing(tmp_path: Path, text: str) -> None:
    assert remote_listeners(load_settings(settings_file(tmp_path, text))) == []


def test_check_warns_about_an_allowed_remote_listener(tmp_path: Path) -> None:
    text = '[metrics]\nlisten = "0.0.0.0:9466"\nallow_remote = true\n'
    text += NETATMO.format(listen="0.0.0.0:8765", extra="allow_remote = true")
    path = settings_file(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "roost", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "warning: metrics.listen = '0.0.0.0:9466' is reachable" in done.stderr
    assert "account 'flat' webhook_listen = '0.0.0.0:8765' is reachable" in done.stderr


def test_sd_notify_to_a_missing_socket_is_not_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sd_notify("READY=1") is False


@pytest.mark.anyio
async def test_the_daemon_runs_on_with_a_missing_notify_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # ping (and fail) every 0.1 s
    async with fault_bed(tmp_path) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_co("alarm-hallway", "emergency")
        await wait_for(lambda: bed.titles()["CO emergency in the Hallway"] == 1)
        assert bed.daemon.process is not None
        assert bed.daemon.process.returncode is None
        # READY (the first sd_notify) follows the notification helper's start: the push
        # can arrive a moment before it.
        await wait_for(lambda: "sd_notify failed" in bed.daemon.log())
        assert bed.daemon.process.returncode is None
