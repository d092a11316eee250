"""One daemon per state directory: `roost.lock` there, held with flock for the process's life.

The kernel drops the lock when the process dies (even by SIGKILL), so a stale lock file
never blocks a restart. The file holds the holder's PID, so a second `roost run` can say
who is running. Everything that removes files of a running daemon (the control socket's
clean-up at start) happens only after this lock is taken.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

FILE_NAME = "roost.lock"


class AlreadyRunning(Exception):
    """Another process holds the state directory's lock."""


class InstanceLock:
    """The held lock; `release()` (or process exit) frees it."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def acquire(state_dir: Path) -> InstanceLock:
    """Take the lock of `state_dir` or raise AlreadyRunning naming the holder's PID."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / FILE_NAME
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise AlreadyRunning(f"cannot open the lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise AlreadyRunning(
            f"another roost (PID {holder}) is running on the state directory {state_dir} "
            f"(it holds {path}); stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return InstanceLock(fd, path)
