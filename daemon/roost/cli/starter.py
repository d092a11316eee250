"""What the wheel carries for a new user: the example rules, the example settings and the
systemd unit (package data under `roost/examples/`), and `roost init [DIR]`, which writes a
starter settings file and the example rules into a directory."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import as_file, files
from pathlib import Path
from typing import TextIO

CONFIG_NAME = "roost.toml"
RULES_NAME = "rules"


@contextmanager
def example_rules() -> Iterator[Path]:
    """The example rule directory installed with roost (what `roost demo` runs)."""
    with as_file(files("roost") / "examples" / RULES_NAME) as path:
        yield path


def example_file(name: str) -> str:
    """`roost.toml` (the example settings) or `roost.service` (the systemd unit)."""
    return (files("roost") / "examples" / name).read_text(encoding="utf-8")


def _rule_files(rules: Path) -> list[Path]:
    return sorted(
        p
        for p in rules.iterdir()
        if p.suffix in (".py", ".toml") and not p.name.startswith("test_")
    )


def starter_config(directory: Path) -> str:
    """The example settings, pointed at DIR/rules. The state directory keeps its default
    ($STATE_DIRECTORY under systemd, else ./state), so the same starter serves a service."""
    return re.sub(
        r'^rules_dir = ".*"$',
        f'rules_dir = "{directory / RULES_NAME}"',
        example_file(CONFIG_NAME),
        flags=re.M,
    )


def init(directory: Path, out: TextIO) -> int:
    """Write DIR/roost.toml and DIR/rules/. Refuses to overwrite anything (exit 1)."""
    directory = directory.absolute()
    with example_rules() as rules:
        sources = _rule_files(rules)
        targets = [directory / CONFIG_NAME] + [directory / RULES_NAME / s.name for s in sources]
        existing = [t for t in targets if t.exists() or t.is_symlink()]
        if existing:
            for path in existing:
                print(f"roost init: {path} exists", file=out)
            print("roost init: nothing was written (move those away first)", file=out)
            return 1
        (directory / RULES_NAME).mkdir(parents=True, exist_ok=True)
        for source in sources:
            shutil.copyfile(source, directory / RULES_NAME / source.name)
    (directory / CONFIG_NAME).write_text(starter_config(directory), encoding="utf-8")
    print(
        f"wrote {directory / CONFIG_NAME} and {len(sources)} rules in {directory / RULES_NAME}/",
        file=out,
    )
    print(f"next: roost check --config {directory / CONFIG_NAME}", file=out)
    return 0
