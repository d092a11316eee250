"""README's module map ("How it fits together") and the package tree agree: every module
of daemon/roost/ is in the map, under its package, and the map names nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import roost

ROOT = Path(roost.__file__).resolve().parent
README = ROOT.parent.parent / "README.md"


def tree_modules(root: Path) -> set[str]:
    """`package/module` for each module (`roost/` for the top level), skipping examples/."""
    found = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        if rel.parts[0] in {"examples"}:
            continue
        if rel.name == "__init__.py" and len(rel.parts) > 1:
            continue  # a package's own init is its row, not a module
        folder = "/".join(rel.parts[:-1]) + "/" if len(rel.parts) > 1 else "roost/"
        found.add(folder + path.stem)
    return found


def map_modules(readme: str) -> set[str]:
    section = readme.split("## How it fits together", 1)[1].split("\n## ", 1)[0]
    found = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not re.fullmatch(r"`[\w/]+/`", cells[0]):
            continue
        folder = cells[0].strip("`")
        names = re.sub(r"\([^()]*\)", "", cells[1])  # descriptions may name other things
        found.update(folder + name for name in re.findall(r"`(\w+)`", names))
    return found


def test_the_module_map_lists_every_module_and_nothing_else() -> None:
    in_tree, in_map = tree_modules(ROOT), map_modules(README.read_text(encoding="utf-8"))
    assert sorted(in_tree - in_map) == [], "modules missing from README's module map"
    assert sorted(in_map - in_tree) == [], "README's module map names modules that do not exist"


def test_a_module_missing_from_the_map_is_found(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("")
    (tmp_path / "core" / "model.py").write_text("")
    (tmp_path / "core" / "stray.py").write_text("")
    (tmp_path / "__init__.py").write_text("")
    readme = "## How it fits together\n\n| `roost/` | `__init__` |\n| `core/` | `model` (`x`) |\n"
    assert tree_modules(tmp_path) - map_modules(readme) == {"core/stray"}
    assert map_modules(readme) - tree_modules(tmp_path) == set()
