"""JSON that leaves roost is strict (RFC 8259): no NaN or Infinity in the journal, the
store, the control socket or any `--json` output; a non-finite number is written as null."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from roost.core.codec import dumps, event_to_dict
from roost.core.events import SetpointChanged
from roost.store.sqlite import JournalEntry, Store

pytestmark = pytest.mark.anyio


def strict_loads(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_everywhere_in_a_value() -> None:
    value = {"a": math.inf, "b": [math.nan, 1.5, {"c": -math.inf}], "d": (float("1e309"),)}
    assert strict_loads(dumps(value)) == {"a": None, "b": [None, 1.5, {"c": None}], "d": [None]}
    assert dumps({"ok": 1.0}) == json.dumps({"ok": 1.0})
    with pytest.raises(
        ValueError, match="not strict"
    ):  # the check itself can fail: the plain encoder is lax
        strict_loads(json.dumps(value))


async def test_the_journal_is_strict_json(tmp_path: Path) -> None:
    at = datetime(2026, 1, 5, 12, tzinfo=UTC)
    event = SetpointChanged(
        id="e1",
        at=at,
        account="a",
        device="t",
        attribute="heat_setpoint_c",
        old=20.0,
        new=float("1e309"),
    )
    store = Store.open(tmp_path)
    await store.journal_append([JournalEntry(at, event.name, "a", event_to_dict(event))])
    store.close()
    with sqlite3.connect(tmp_path / "roost.db") as conn:
        (body,) = conn.execute("SELECT body FROM journal").fetchone()
    assert strict_loads(body)["new"] is None
