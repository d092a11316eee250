"""`roost check` as root: rule files are Python, so executing them as root would hand root
to whoever can write the rule directory. As root, check first drops to the service user
(the owner of the state directory); when there is none to drop to, it executes no rule
code and checks only the settings and the TOML rules. Either way it says which."""

from __future__ import annotations

import os
from pathlib import Path


def may_run_rule_code(state_dir: Path) -> tuple[bool, str]:
    """(whether rule code may run now, a note for the person; empty when not root)."""
    if os.geteuid() != 0:
        return True, ""
    try:
        owner = state_dir.stat()
    except OSError:
        owner = None
    if owner is None or owner.st_uid == 0:
        return False, (
            "running as root with no service user to drop to (the state directory "
            f"{state_dir} is not owned by one): Python rule files are not executed; "
            "run `roost check` as the service user to check them"
        )
    os.setgroups([])
    os.setgid(owner.st_gid)
    os.setuid(owner.st_uid)
    return True, (
        f"running as root: dropped privileges to uid {owner.st_uid} gid {owner.st_gid} "
        f"(the owner of {state_dir}) before executing rule code"
    )
