"""roost's SQLite file opened by another process while roost has it open (`roost outbox`,
a `sqlite3` shell, a backup script, a test reading the outbox): what roost commits afterwards
stays in the file.

SQLite's WAL mode takes the last connection to close for the only one and deletes the -wal
and -shm files; it knows others by their POSIX lock on the file, which a process loses when
it closes any descriptor of that file. roost's store opened the file a second time (its
timers' connection) through such a descriptor, so it held no lock: a reader closing beside
it deleted the write-ahead log roost was writing, and roost's later commits were lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from roost.store.sqlite import FILE_NAME, Store

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)

# A reader as a person or a script would open it: read-write (a read-only one never
# checkpoints), one query, closed.
READER = """
import json, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
rows = conn.execute("SELECT account, snapshot FROM home_state").fetchall()
conn.close()
print(json.dumps(rows))
"""


def read_elsewhere(path: Path) -> dict[str, int]:
    """Each account's saved home's `n`, read by another process that then closes."""
    out = subprocess.run(
        [sys.executable, "-c", READER, str(path)], capture_output=True, text=True, check=True
    )
    return {str(a): int(json.loads(s)["n"]) for a, s in json.loads(out.stdout)}


def held_locks(path: Path) -> list[str]:
    """This process's POSIX locks on the file, from /proc/locks."""
    inode = f":{path.stat().st_ino} "
    with open("/proc/locks") as locks:
        return [line for line in locks if inode in line and f" {os.getpid()} " in line]


def roost_outbox(state_dir: Path) -> None:
    """`roost outbox` (the README's troubleshooting look) beside the running store."""
    config = state_dir.parent / "roost.toml"
    config.write_text(f'[daemon]\nstate_dir = "{state_dir}"\n')
    subprocess.run(
        [sys.executable, "-m", "roost", "outbox", "--config", str(config)],
        capture_output=True,
        check=True,
    )


@pytest.mark.parametrize("look", ["sqlite3", "roost outbox"])
async def test_a_reader_closing_beside_the_store_loses_none_of_its_later_commits(
    tmp_path: Path, look: str
) -> None:
    state_dir = tmp_path / "state"
    store = Store.open(state_dir)
    timers = store.timer_persistence()  # the daemon's second connection, as roost run has it
    path = state_dir / FILE_NAME
    try:
        await store.home_put("home", {"n": 1}, NOW)
        if look == "roost outbox":
            roost_outbox(state_dir)
        assert read_elsewhere(path) == {"home": 1}  # ... and that reader closed
        await store.home_put("home", {"n": 2}, NOW)
        assert read_elsewhere(path) == {"home": 2}
        assert (state_dir / f"{FILE_NAME}-wal").exists()  # still the log roost writes to
    finally:
        timers.close()
        store.close()


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="reads Linux's /proc/locks")
def test_the_store_and_its_timers_keep_the_lock_that_tells_sqlite_they_are_there(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path)
    path = tmp_path / FILE_NAME
    try:
        assert held_locks(path), "the store's connection holds a shared lock on the file"
        timers = store.timer_persistence()
        try:
            assert held_locks(path), "opening the timers' connection kept it"
        finally:
            timers.close()
    finally:
        store.close()
