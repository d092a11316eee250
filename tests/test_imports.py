"""What `roost run` imports: apprise and its plugins live in the notification helper
(roost/notify/helper.py), and modules only some commands need stay out of the daemon
(each was measured in idle RSS; bench/idle.py prints the total)."""

from __future__ import annotations

import subprocess
import sys

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
