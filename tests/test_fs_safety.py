"""Root-run commands never follow a planted symlink in the state directory, and `roost
check` as root, with a rule file someone else can change, either drops to the service user
or executes no rule code, saying which."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from roost.cli.auth import give_to_state_owner
from roost.store.sqlite import Store, StoreError

SERVICE_UID = 4242

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as the commands run")


def victim(tmp_path: Path) -> Path:
    target = tmp_path / "etc-shadow"
    target.write_text("precious\n")
    target.chmod(0o640)
    return target


@pytest.mark.parametrize("name", ["roost.db", "roost.db-wal", "roost.db-shm", "roost.db-journal"])
def test_the_store_refuses_a_planted_symlink(tmp_path: Path, name: str) -> None:
    target = victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / name).symlink_to(target)
    with pytest.raises(StoreError, match="symlink"):
        Store.open(state)
    assert target.read_text() == "precious\n"
    assert target.stat().st_mode & 0o777 == 0o640


def test_roost_outbox_names_the_link_and_changes_nothing(tmp_path: Path) -> None:
    target = victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "roost.db").symlink_to(target)
    config = tmp_path / "roost.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state}"\nrules_dir = "{tmp_path}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "roost", "outbox", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "symlink" in done.stderr
    assert target.stat().st_mode & 0o777 == 0o640


@root_only
def test_auth_gives_files_to_the_service_user_but_never_a_link_target(tmp_path: Path) -> None:
    target = victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, SERVICE_UID, SERVICE_UID)
    Store.open(state).close()  # roost.db and friends, created by root
    (state / "roost.db-shm").unlink(missing_ok=True)
    (state / "roost.db-shm").symlink_to(target)
    give_to_state_owner(state)
    assert (state / "roost.db").stat().st_uid == SERVICE_UID
    assert target.stat().st_uid == 0
    assert (state / "roost.db-shm").lstat().st_uid == 0  # the link itself is left alone


RULE_WITH_SIDE_EFFECT = """
import os
from pathlib import Path
Path({marker!r}).write_text(str(os.geteuid()))
"""


def check_as_root(
    tmp_path: Path, state_owner: int
) -> tuple[subprocess.CompletedProcess[str], Path]:
    rules = tmp_path / "rules"
    rules.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    marker = shared / "ran-as"
    sneaky = rules / "sneaky.py"
    sneaky.write_text(RULE_WITH_SIDE_EFFECT.format(marker=str(marker)))
    os.chown(sneaky, SERVICE_UID, SERVICE_UID)  # someone other than root can change it
    (rules / "fine.toml").write_text(
        '[[rule]]\nname = "hello"\non = { event = "presence" }\n'
        'do = [{ action = "notify", title = "hi" }]\n'
    )
    tmp_path.chmod(0o755)
    rules.chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, state_owner, state_owner)
    config = tmp_path / "roost.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state}"\nrules_dir = "{rules}"\n')
    config.chmod(0o644)
    done = subprocess.run(
        [sys.executable, "-m", "roost", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done, marker


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory the service user can reach (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="roost-check-") as name:
        path = Path(name)
        path.chmod(0o755)
        yield path


@root_only
def test_check_as_root_without_a_service_user_executes_no_rule_code(open_dir: Path) -> None:
    done, marker = check_as_root(open_dir, state_owner=0)
    assert not marker.exists()
    assert "Python rule files are not executed" in done.stderr
    assert "sneaky.py" in done.stderr
    assert "1 rule(s) in 1 file(s)" in done.stdout  # the TOML rule was still checked


@root_only
def test_check_as_root_drops_to_the_service_user_first(open_dir: Path) -> None:
    done, marker = check_as_root(open_dir, state_owner=SERVICE_UID)
    assert "dropped privileges to uid 4242" in done.stderr
    assert marker.read_text() == str(SERVICE_UID), done.stderr


@root_only
def test_check_as_root_runs_rule_files_only_root_can_change(open_dir: Path) -> None:
    _, marker = check_as_root(open_dir, state_owner=0)
    os.chown(open_dir / "rules" / "sneaky.py", 0, 0)
    marker.unlink(missing_ok=True)
    config = open_dir / "roost.toml"
    again = subprocess.run(
        [sys.executable, "-m", "roost", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert marker.read_text() == "0", again.stderr
    assert "roost check:" not in again.stderr


def test_the_instance_lock_refuses_a_planted_symlink(tmp_path: Path) -> None:
    from roost.host.lock import AlreadyRunning, acquire

    target = victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / "roost.lock").symlink_to(target)
    with pytest.raises(AlreadyRunning, match="cannot open the lock file"):
        acquire(state)
    assert target.read_text() == "precious\n"


def test_the_instance_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    from roost.host.lock import AlreadyRunning, acquire

    held = acquire(tmp_path)
    with pytest.raises(AlreadyRunning, match=f"PID {os.getpid()}"):
        acquire(tmp_path)
    held.release()
    acquire(tmp_path).release()
