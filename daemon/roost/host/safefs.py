"""Files in the state, runtime and credential directories, touched without following
symlinks: commands run as root (`roost auth`, `roost outbox`) must not be tricked into
creating, chmodding or chowning whatever a planted link points to."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


class UnsafePath(OSError):
    """A path that is a symlink (or not a regular file) where roost keeps its own files."""


def refuse_links(paths: Iterable[Path]) -> None:
    """UnsafePath if any of `paths` exists as a symlink or anything but a regular file."""
    for path in paths:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise UnsafePath(f"{path} is a symlink; roost does not follow it (remove it)")
        if not stat.S_ISREG(mode):
            raise UnsafePath(f"{path} is not a regular file; roost leaves it alone")


def private_file(path: Path) -> None:
    """Create `path` if missing and make it mode 0600, through a descriptor opened with
    O_NOFOLLOW (a symlink there raises UnsafePath)."""
    refuse_links([path])
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if os.path.islink(path):
            raise UnsafePath(f"{path} is a symlink; roost does not follow it (remove it)") from None
        raise exc
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def give_to(path: Path, uid: int, gid: int) -> bool:
    """chown a regular file, never what a symlink points to; False if `path` was skipped."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(mode):
        return False
    os.chown(path, uid, gid, follow_symlinks=False)
    return True
