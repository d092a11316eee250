"""Print a pip constraints file pinning every dependency of roost (and of its `dev` extra)
to the lowest version pyproject.toml allows: `name==floor` for each `>=floor`.

`.ci/run` installs roost with these into a separate venv and runs the suite again, so a
floor in pyproject.toml is one the suite has passed with.
"""

import re
import sys
import tomllib
from pathlib import Path

# The linters and type stubs are not run in the lowest-versions job.
NOT_RUN = {"mypy", "ruff", "types-croniter", "types-PyYAML"}

project = tomllib.loads(Path(sys.argv[1]).read_text())["project"]
for requirement in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
    match = re.match(r"\s*([A-Za-z0-9_.-]+)(?:\[[^]]*\])?\s*(.*)", requirement)
    if match is None:
        sys.exit(f"cannot read requirement {requirement!r}")
    name, spec = match.groups()
    if name in NOT_RUN:
        continue
    floor = re.search(r">=\s*([^,;\s]+)", spec)
    if floor is None:
        sys.exit(f"{name} has no floor (>=): give it one")
    print(f"{name}=={floor.group(1)}")
