"""`roost check` as root: rule files are Python, so executing them as root would hand root
to whoever can write the rule directory. When only root can write the rule files, running
them as root grants nothing new; otherwise check first drops to the service user (the
owner of the state directory), and when there is none to drop to, it executes no rule
code and checks only the settings and the TOML rules. It says which it did."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path


def may_run_rule_code(state_dir: Path, rule_paths: Iterable[Path]) -> tuple[bool, str]:
    """(whether rule code may run now, a note for the person; empty when not root)."""
    if os.geteuid() != 0:
        return True, ""
    others = [str(p) for p in rule_paths if _writable_by_others(p)]
    if not others:
        return True, ""
    try:
        owner = state_dir.stat()
    except OSError:
        owner = None
    shown = ", ".join(others[:3]) + (" …" if len(others) > 3 else "")
    if owner is None or owner.st_uid == 0:
        return False, (
            f"running as root and {shown} can be changed by a user other than root; no "
            f"service user to drop to (the state directory {state_dir} is not owned by "
            "one): Python rule files are not executed; run `roost check` as the service user"
        )
    os.setgroups([])
    os.setgid(owner.st_gid)
    os.setuid(owner.st_uid)
    return True, (
        f"running as root and {shown} can be changed by a user other than root: dropped "
        f"privileges to uid {owner.st_uid} gid {owner.st_gid} (the owner of {state_dir}) "
        "before executing rule code"
    )


def _writable_by_others(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return info.st_uid != 0 or bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
