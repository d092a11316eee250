"""Modules the daemon never runs, kept out of it before anything imports their parents
(each measured in idle RSS; tests/test_imports.py checks they stay out)."""

import sys

# httpx imports its command line (click, and pygments and rich where installed) whenever
# it can, and apprise depends on click: 1.6 MiB of the daemon's RSS for a tool roost never
# runs. None in sys.modules makes that import fail, and httpx goes on without it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

# structlog's deprecated thread-local context (which roost does not use) is made
# greenlet-aware whenever greenlet is installed (Playwright brings it into the dev venv):
# 1.1 MiB for an import roost never calls. Without this module structlog falls back to
# `threading.local`; greenlet itself stays importable for whoever needs it.
sys.modules.setdefault("structlog._greenlets", None)  # type: ignore[arg-type]
