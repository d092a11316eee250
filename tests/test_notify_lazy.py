"""apprise loads on the first notification, not at start (idle memory), and the targets
are still checked at start, in a child process, with the allowed schemes applied."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import roost.notify
from roost.notify import NotifyConfigError, Target, validate_targets

BUILD_NOTIFIER = """
import sys
from pathlib import Path
from roost.bus import Bus
from roost.notify import Notifier, Target, restrict_schemes
from roost.store import Store
restrict_schemes(["json"])
Notifier([Target("json://127.0.0.1:9/hook", frozenset())], Bus(), Store.open(Path(sys.argv[1])))
print("apprise loaded" if "apprise" in sys.modules else "apprise not loaded")
"""


def test_a_notifier_with_a_valid_target_does_not_load_apprise(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", BUILD_NOTIFIER, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.strip() == "apprise not loaded"


def test_a_target_whose_scheme_is_not_allowed_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what restrict_schemes(["json"]) keeps for the check (set here without touching an
    # apprise that other tests of this process may have loaded)
    monkeypatch.setattr(roost.notify, "_allowed_schemes", ("json",))
    validate_targets([Target("json://127.0.0.1:9/hook", frozenset())])  # allowed: fine
    with pytest.raises(NotifyConfigError, match="ntfys://"):
        validate_targets([Target("ntfys://my-topic", frozenset())])


def test_an_unparsable_target_is_refused_at_start() -> None:
    with pytest.raises(NotifyConfigError, match="json://"):
        validate_targets([Target("json://", frozenset())])
