from __future__ import annotations

import pytest

from tests.faults.harness import TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.faults:
        terminalreporter.write_line(TALLY.summary())
