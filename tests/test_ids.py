"""Ids: unique within a process and across restarts (a random per-process part), one
sequence for every kind; a trace's id is spelled only when read, and always the same."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime

from roost.core.ids import new_id
from roost.engine.traces import Trace

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_ids_are_unique_and_of_one_sequence() -> None:
    first, trace, last = new_id("c"), Trace("r", "t", AT), new_id()
    ids = [first, trace.id, last]
    assert len(set(ids)) == 3
    boot = first[1:].split(".")[0]
    assert [re.fullmatch(rf"([cte]){boot}\.(\d+)", i) is not None for i in ids] == [True] * 3
    numbers = [int(i.rsplit(".", 1)[1]) for i in ids]
    assert numbers[0] < numbers[1] < numbers[2]
    assert trace.id == trace.id == trace.to_json()["id"]


def test_ids_differ_across_restarts() -> None:
    def boot_of_a_new_process() -> str:
        code = "from roost.core.ids import new_id; print(new_id())"
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert boot_of_a_new_process() != boot_of_a_new_process()
