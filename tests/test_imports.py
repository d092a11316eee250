"""What `roost run` imports: apprise and its plugins live in the notification helper
(roost/notify/helper.py), and modules only some commands need stay out of the daemon
(each was measured in idle RSS; bench/idle.py prints the total)."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import roost
from roost.providers.registry import VENDORS
from tests.import_contracts import import_graph, reachable

# Module -> what keeping it out of the daemon saves (VmRSS, one WWN account).
KEPT_OUT = {
    "apprise": "~27 MiB with its plugins (in the helper process instead)",
    "click": "httpx's command line, with pygments: 1.6 MiB",
    "pygments": "httpx's command line",
    "greenlet": "structlog's deprecated thread-local context, where greenlet is installed: 1.1 MiB",
    "roost.providers.netatmo.provider": "a vendor's provider, only for its accounts",
    "astral": "the solar equations, only once a sun trigger or condition is computed: 0.2 MiB",
    "jinja2": "the web page's templates, only when [web] listen is set",
    "roost.web.app": "the web page, only when [web] listen is set",
}

DAEMON_MODULES = (
    "roost.cli.entry, roost.service.runtime, roost.service.systemd, roost.notify.helper_link"
)


def loaded(modules: str) -> set[str]:
    code = f"import sys, {modules}; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_daemon_leaves_out_what_it_does_not_run() -> None:
    present = loaded(DAEMON_MODULES)
    assert not [name for name in KEPT_OUT if name in present]


def test_the_helper_is_a_script_that_imports_nothing_of_roost() -> None:
    """Run as `python -I notifyhelper.py`; importing roost there would load the daemon."""
    from roost.notify import helper as notifyhelper

    with open(notifyhelper.__file__, encoding="utf-8") as source:
        imports = [line for line in source if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "roost" in line]


# Every kind of setting `roost run` gets back from its settings child: one account of each
# vendor (unpickling imports its package), every section set, secrets inline and as
# credential files.
EVERY_SETTING = """
[daemon]
time_zone = "Europe/Berlin"
[log]
level = "DEBUG"
[[accounts]]
name = "wwn"
provider = "nest_wwn"
token_credential = "wwn_token"
[[accounts]]
name = "web"
provider = "nest_web"
email = "me@example.com"
password = "nest-password"
[[accounts]]
name = "atmo"
provider = "netatmo"
client_id = "c"
client_secret = "netatmo-secret"
refresh_token = "netatmo-refresh"
webhook_listen = "127.0.0.1:8765"
[[accounts]]
name = "sdm"
provider = "sdm"
client_id = "c"
client_secret = "sdm-secret"
refresh_token = "sdm-refresh"
project_id = "p"
subscription = "projects/p/subscriptions/s"
[notify]
urls_credential = "apprise"
[[notify.targets]]
url = "json://127.0.0.1:1/x"
[metrics]
listen = "127.0.0.1:9466"
[web]
listen = "127.0.0.1:8470"
[location]
latitude = 52.5
longitude = 13.4
structures = { Cabin = { latitude = 47.0, longitude = 11.0 } }
[store]
pool_size = 2
[guards]
heat_max_c = 28
"""

# What the daemon does with the settings it got: the modules that use them, imported after.
SETTINGS_USERS = (
    "roost.service.stores, roost.service.notify_test, roost.cluster.worker, roost.core.redact"
)

FROM_THE_CHILD = f"""
import json, sys
from pathlib import Path
from roost.cli.entry import _settings_or_exit
settings = _settings_or_exit(Path(sys.argv[1]), in_child=sys.argv[2] == "child")
import {SETTINGS_USERS}
roost.core.redact.remember_settings(settings)
print(json.dumps({{
    "pydantic": sorted(n for n in sys.modules if n.split(".")[0].startswith("pydantic")),
    "accounts": [type(a).__name__ for a in settings.accounts],
    "token": settings.accounts[0].token.get_secret_value(),
    "targets": len(settings.notify.targets),
    "level": settings.log.level,
    "redacted": roost.core.redact.redact_text("sdm-refresh and netatmo-secret"),
}}))
"""


def settings_in(tmp_path: Path, where: str) -> dict[str, object]:
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    (credentials / "wwn_token").write_text("c.from-credential\n")
    (credentials / "apprise").write_text("ntfys://ntfy.sh/topic\n")
    path = tmp_path / "roost.toml"
    path.write_text(EVERY_SETTING)
    env = {"CREDENTIALS_DIRECTORY": str(credentials), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", FROM_THE_CHILD, str(path), where],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    answer: dict[str, object] = json.loads(out.stdout)
    return answer


def test_roost_run_gets_its_settings_without_importing_pydantic(tmp_path: Path) -> None:
    """`roost run` has its settings validated in a child: its own process holds the plain
    dataclasses and the modules that use them, and not pydantic (~12 MiB of idle RSS)."""
    got = settings_in(tmp_path, "child")
    assert got["pydantic"] == []
    assert got["accounts"] == ["NestWwnAccount", "NestWebAccount", "NetatmoAccount", "SdmAccount"]
    assert (got["token"], got["targets"], got["level"]) == ("c.from-credential", 2, "debug")
    assert got["redacted"] == "[REDACTED] and [REDACTED]"


def test_the_check_sees_pydantic_where_the_settings_are_loaded_in_process(
    tmp_path: Path,
) -> None:
    """The check above can fail: loading in-process (the short-lived commands) imports it."""
    assert "pydantic" in settings_in(tmp_path, "here")["pydantic"]


def test_roost_run_reports_a_bad_setting_from_its_child(tmp_path: Path) -> None:
    path = tmp_path / "roost.toml"
    path.write_text("# roost\n[daemon]\ndry_runn = true\n")
    done = subprocess.run(
        [sys.executable, "-m", "roost", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"{path}:3: daemon.dry_runn: Extra inputs are not permitted"


# What `roost run` imports for its settings: the schema, the child that validates them and
# each vendor's package (unpickling an account imports its class), and all they import.
SETTINGS_SIDE = [
    "roost.config.settings",
    "roost.host.child",
    *(f"roost.providers.{name}" for name in VENDORS),
]
# pydantic reads a schema through this hook; only pydantic calls it, in the loader's process.
PYDANTIC_HOOK = "__get_pydantic_core_schema__"


def pydantic_importers(root: Path) -> list[str]:
    """Modules on the settings side that import pydantic anywhere (lazily too), but in a
    `__get_pydantic_core_schema__`."""
    graph = import_graph(root, skip=("examples",))
    found = []
    for module in sorted(reachable(graph, SETTINGS_SIDE) | set(SETTINGS_SIDE)):
        path = root.joinpath(*module.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hooks = [n for n in ast.walk(tree) if getattr(n, "name", None) == PYDANTIC_HOOK]
        in_hooks = {id(n) for hook in hooks for n in ast.walk(hook)}
        for node in ast.walk(tree):
            if id(node) in in_hooks:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(name.split(".")[0].startswith("pydantic") for name in names):
                found.append(module)
                break
    return found


def test_no_module_on_the_settings_side_imports_pydantic() -> None:
    assert pydantic_importers(Path(roost.__file__).resolve().parent) == []


def test_a_settings_module_importing_pydantic_is_found(tmp_path: Path) -> None:
    copy = tmp_path / "roost"
    root = Path(roost.__file__).resolve().parent
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("__pycache__", "examples"))
    accounts = copy / "providers" / "accounts.py"
    source = "\ndef later() -> None:\n    from pydantic import TypeAdapter\n"
    accounts.write_text(accounts.read_text(encoding="utf-8") + source, encoding="utf-8")
    assert pydantic_importers(copy) == ["roost.providers.accounts"]
