"""The journal's rows: `event_json` writes, for any event, the very text the journal wrote
before it (`dumps_plain(event_to_dict(event))`), and `journal_events` stores what
`journal_append` stored for the same events, on both stores."""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.core.codec import dumps, dumps_plain, event_json, event_to_dict
from roost.core.commands import FailureReason
from roost.core.events import (
    EVENT_TYPES,
    AttributeChanged,
    CommandOutcome,
    Context,
    Event,
    Outcome,
    SetpointChanged,
)
from roost.core.model import AlarmState, Presence, ThermostatMode
from roost.store.sqlite import JournalEntry, Store

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class _Celsius(float):
    pass


class _Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class _Reading:
    value: float
    when: datetime


class _OwnContext(Context):
    __slots__ = ()


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from([Outcome.QUEUED, AlarmState.EMERGENCY, Presence.AWAY, ThermostatMode.HEAT]),
    st.sampled_from([FailureReason.OFFLINE, _Level.LOW, _Celsius(21.5), _Celsius(math.nan)]),
    st.sampled_from([AT, AT.astimezone(timezone(timedelta(hours=-5))), datetime(2026, 1, 5)]),
    st.builds(_Reading, st.floats(allow_nan=True), st.just(AT)),
    st.builds(Context, st.none() | st.text(max_size=4), st.none(), st.none(), st.booleans()),
    st.builds(_OwnContext, st.text(max_size=4)),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def _events(draw: st.DrawFn) -> Event:
    """Any event class, every field any value (fields are not checked at run time)."""
    cls = draw(st.sampled_from(sorted(EVENT_TYPES.values(), key=lambda c: c.name)))
    fields = {f.name: draw(_values) for f in dataclasses.fields(cls) if f.init}
    event: Event = cls(**fields)
    return event


@settings(max_examples=400, deadline=None)
@given(_events())
def test_event_json_writes_what_the_journal_wrote(event: Event) -> None:
    assert event_json(event) == dumps_plain(event_to_dict(event))


def test_event_json_of_the_hot_path_events() -> None:
    """The events the stream benchmark journals per change, and strict JSON throughout."""
    change = AttributeChanged(
        id="a/t1.humidity/1",
        at=AT,
        account="a",
        device="t1",
        attribute="humidity",
        old=0.0,
        new=0.001,
    )
    context = Context("c1", change.id, "follow the reading")
    outcome = CommandOutcome(
        id="o", at=AT, account="a", device="t1", context=context, command="c1",
        action="heat to 10 °C", outcome=Outcome.QUEUED, rule="follow the reading",
        reason="guards passed", target="t1", cause=change.id,
    )  # fmt: skip
    odd = SetpointChanged(
        id="s", at=AT, account="a", attribute="heat_setpoint_c", old=math.nan, new=math.inf
    )
    for event in (change, outcome, odd):
        text = event_json(event)
        assert text == dumps(event_to_dict(event))
        assert json.loads(text) == json.loads(dumps(event_to_dict(event)))
    assert json.loads(event_json(odd))["old"] is None


@pytest.mark.anyio
async def test_journal_events_stores_what_journal_append_stored(tmp_path: Path) -> None:
    events = [
        AttributeChanged(
            id=f"e{i}", at=AT + timedelta(seconds=i), account="a", device="t1",
            attribute="humidity", old=None, new=i / 3,
        )
        for i in range(3)
    ] + [
        SetpointChanged(
            id="s", at=AT.astimezone(timezone(timedelta(hours=2))), account="b",
            attribute="heat_setpoint_c", old=20.0, new=float("1e309"),
        )
    ]  # fmt: skip
    old, new = Store.open(tmp_path / "old"), Store.open(tmp_path / "new")
    try:
        await old.journal_append(
            [JournalEntry(e.at, e.name, e.account, event_to_dict(e)) for e in events]
        )
        await new.journal_events(events)
        await new.journal_events([])
        rows = "SELECT seq, at, event, account, body FROM journal ORDER BY seq"
        assert _rows(tmp_path / "new", rows) == _rows(tmp_path / "old", rows)
        assert len(await new.journal()) == 4
        assert (await new.journal())[-1].body["new"] is None
    finally:
        old.close()
        new.close()


def _rows(state_dir: Path, sql: str) -> list[Any]:
    import sqlite3

    with sqlite3.connect(state_dir / "roost.db") as conn:
        return conn.execute(sql).fetchall()
