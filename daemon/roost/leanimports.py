"""Modules the daemon never runs, kept out of it before anything imports their parents
(each measured in idle RSS; tests/test_imports.py checks they stay out)."""

import sys

# httpx imports its command line (click, and pygments and rich where installed) whenever
# it can, and apprise depends on click: 1.6 MiB of the daemon's RSS for a tool roost never
# runs. None in sys.modules makes that import fail, and httpx goes on without it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
