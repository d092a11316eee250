"""The notification helper loads only the apprise plugins the targets' schemes need
(roost/notify/helper.py), and every scheme roost allows by default is found that way."""

from __future__ import annotations

import json
import subprocess
import sys

from roost.config.settings import SAFE_NOTIFY_SCHEMES

PROBE = """
import json, sys
from roost.notify.helper import prepare
allowed, needed = sys.argv[1].split(","), sys.argv[2].split(",")
apprise = prepare(allowed, needed)
manager = apprise.NotificationManager()
plugins = sorted(m for m in sys.modules if m.count(".") == 2 and m.startswith("apprise.plugins."))
print(json.dumps({"found": [s for s in needed if s in manager], "plugins": plugins}))
"""


def probe(allowed: list[str], needed: list[str]) -> dict[str, list[str]]:
    """In a fresh process: apprise's plugin manager is one per process."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(allowed), ",".join(needed)],
        capture_output=True,
        text=True,
        check=True,
    )
    answer: dict[str, list[str]] = json.loads(out.stdout)
    return answer


def test_one_target_loads_its_plugin_alone() -> None:
    answer = probe(list(SAFE_NOTIFY_SCHEMES), ["json"])
    assert answer["found"] == ["json"]
    assert answer["plugins"] == ["apprise.plugins.base", "apprise.plugins.custom_json"]


def test_every_default_scheme_is_found_without_loading_everything() -> None:
    schemes = list(SAFE_NOTIFY_SCHEMES)
    answer = probe(schemes, schemes)
    assert answer["found"] == schemes
    assert len(answer["plugins"]) < 40  # of ~190: the point of loading by scheme
