"""The hot path's cheaper pieces behave as the plain ones they replace: the descriptor
`__init__` of events and commands (`fastinit`), the per-class entity copy, the cached
redaction of recurring texts, and the journal's pre-built JSON encoder."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from roost.core.codec import dumps, dumps_plain, event_to_dict
from roost.core.commands import SetHeat, SetRange
from roost.core.events import (
    EVENT_TYPES,
    AttributeChanged,
    CommandOutcome,
    Context,
    Outcome,
    TemperatureChanged,
)
from roost.core.fastinit import fast_init
from roost.core.redact import REDACTED, Redactor

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _kinds(with_fast_init: bool) -> type:
    @dataclass(frozen=True, slots=True)
    class Kinds:
        plain: int
        default: str = "d"
        made: list[int] = field(default_factory=lambda: [1])
        hidden: int = field(default=7, init=False)
        named: float = field(default=0.5, kw_only=True)
        required: str = field(kw_only=True)

        def __post_init__(self) -> None:
            if self.plain < 0:
                raise ValueError("plain must not be negative")

    return fast_init(Kinds) if with_fast_init else Kinds


def test_fast_init_builds_what_the_dataclass_init_builds() -> None:
    slow, fast = _kinds(False), _kinds(True)
    assert str(inspect.signature(fast)) == str(inspect.signature(slow))
    calls = [((1,), {"required": "r"}), ((2, "x", [3]), {"named": 1.5, "required": "q"})]
    for args, kwargs in calls:
        a, b = slow(*args, **kwargs), fast(*args, **kwargs)
        assert dataclasses.astuple(a) == dataclasses.astuple(b)
    assert fast(1, required="r").made is not fast(1, required="r").made  # a fresh default
    with pytest.raises(TypeError):
        fast(1)  # a required keyword is missing, as with the dataclass's own
    with pytest.raises(ValueError, match="negative"):
        fast(-1, required="r")  # __post_init__ still runs
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast(1, required="r").plain = 2  # type: ignore[attr-defined]


def test_fast_init_refuses_a_class_it_would_break() -> None:
    @dataclass
    class Mutable:
        x: int

    with pytest.raises(TypeError, match="frozen slots"):
        fast_init(Mutable)


def test_every_event_class_has_the_fast_init_and_its_dataclass_behaviour() -> None:
    for cls in [*EVENT_TYPES.values(), Context]:
        assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
        assert "_set_" in cls.__init__.__code__.co_names[0]  # the descriptor setters
    event = TemperatureChanged(id="e1", at=AT, account="a", device="t1", old=18.0, new=18.5)
    assert event == TemperatureChanged(id="e1", at=AT, account="a", device="t1", old=18.0, new=18.5)
    assert event.context is Context() or event.context == Context()
    assert dataclasses.replace(event, new=19.0).new == 19.0
    outcome = CommandOutcome(
        id="o", at=AT, account="a", command="c", action="heat", outcome=Outcome.DRY_RUN
    )
    assert (outcome.attempt, outcome.reason, outcome.guard) == (0, "", None)
    assert SetRange(20.0, 24.0) == SetRange(heat_celsius=20.0, cool_celsius=24.0)


def test_a_patched_entity_is_a_full_copy_with_the_new_values() -> None:
    from roost.core.model import Thermostat
    from roost.state.home_state import _with_values

    before = Thermostat(id="t1", structure_id="s1", name="Den", ambient_c=18.0, locked=True)
    after = _with_values(before, {"ambient_c": 19.0})
    assert after is not None
    assert after is not before
    assert after == dataclasses.replace(before, ambient_c=19.0)
    assert before.ambient_c == 18.0  # the held one is untouched
    assert _with_values(before, {"no_such_attribute": 1}) is None


def test_a_cached_redaction_learns_a_new_secret() -> None:
    """A text redacted (and cached) before a secret was known is redacted again after."""
    redactor = Redactor()
    text = "vendor said: abcdef123456 is not valid"
    assert redactor.text(text) == text
    redactor.remember("abcdef123456")
    assert redactor.text(text) == f"vendor said: {REDACTED} is not valid"


def test_a_recurring_text_is_redacted_the_same_every_time() -> None:
    redactor = Redactor()
    text = "password: hunter22 passed"
    first = redactor.text(text)
    assert "hunter22" not in first
    assert redactor.text(text) == first


def test_the_journal_encoder_writes_what_dumps_writes() -> None:
    events = [
        AttributeChanged(
            id="a/t1.x/1", at=AT, account="a", device="t1", attribute="x", old='é"', new=None
        ),
        TemperatureChanged(id="e2", at=AT, account="a", device="t1", old=math.nan, new=math.inf),
        CommandOutcome(
            id="o",
            at=AT,
            account="a",
            context=Context("c1", "k", "rule", depth=2),
            command="c1",
            action=SetHeat(21.0).describe(),
            outcome=Outcome.REFUSED,
            latency_s=0.25,
        ),
    ]
    for event in events:
        body = event_to_dict(event)
        assert dumps_plain(body) == dumps(body)
    assert dumps_plain({"n": [math.nan, 1e309, -math.inf]}) == '{"n": [null, null, null]}'
