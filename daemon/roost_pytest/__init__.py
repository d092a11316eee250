"""roost's pytest plugin (the `pytest11` entry point): the `simulate_home` fixture.

pytest loads every installed plugin at every run, in any project of the venv, so this is a
package of its own: importing anything inside `roost` would import roost's public API
(~0.2 s). Nothing of roost is imported until a test asks for the fixture.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def simulate_home() -> Any:
    """The `roost.testing.simulate` context manager, as a fixture."""
    from roost.testing.sandbox import simulate

    return simulate
