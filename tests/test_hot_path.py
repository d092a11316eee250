"""The hot path's cheaper pieces behave as the plain ones they replace: the descriptor
`__init__` of events and commands (`fastinit`), the per-class entity copy, the cached
redaction of recurring texts, and the journal's pre-built JSON encoder."""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from roost.core.codec import dumps, dumps_plain, event_to_dict
from roost.core.commands import SetHeat, SetRange
from roost.core.events import (
    EVENT_TYPES,
    AttributeChanged,
    Changed,
    CoAlarm,
    CommandOutcome,
    Context,
    Outcome,
    SetpointChanged,
    TemperatureChanged,
    change_pair,
)
from roost.core.fastinit import fast_init, replacer
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


def test_a_replacer_copies_as_dataclasses_replace_does() -> None:
    kinds = _kinds(True)
    original = kinds(3, "x", required="r", named=2.5)
    replace = replacer(kinds)
    for values in ({}, {"plain": 9}, {"default": "y", "named": 1.0}, {"hidden": 8}):
        copy = replace(original, values)
        if "hidden" in values:  # not an init field: replace cannot set it, a replacer can
            assert copy.hidden == values["hidden"]  # type: ignore[attr-defined]
        else:
            assert copy == dataclasses.replace(original, **values)
        assert copy is not original
        assert type(copy) is kinds
        assert dataclasses.astuple(original) == (3, "x", [1], 7, 2.5, "r")  # untouched
        with pytest.raises(dataclasses.FrozenInstanceError):
            copy.plain = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        replace(original, {"nowhere": 1})


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


def test_the_positional_makers_build_what_the_classes_build() -> None:
    """`make_outcome` and `make_context` (the dispatcher's outcome path) take every field in
    the declared order and build what the keyword constructors build."""
    from roost.core.events import make_context, make_outcome

    values = {f.name: f"v{i}" for i, f in enumerate(dataclasses.fields(CommandOutcome))}
    values.update(at=AT, context=Context("c", "e", "r", False, 2), outcome=Outcome.REFUSED)
    made = make_outcome(*values.values())
    assert type(made) is CommandOutcome
    assert made == CommandOutcome(**values)
    assert make_context("c", "e", "r", True, 3) == Context("c", "e", "r", True, 3)
    assert type(make_context("c", "e", "r", True, 3)) is Context
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.reason = "changed"  # type: ignore[misc]
    assert hash(make_context("c", "e", "r", True, 3)) == hash(Context("c", "e", "r", True, 3))


@pytest.mark.parametrize("cls", [TemperatureChanged, SetpointChanged, CoAlarm])
def test_a_change_pair_appends_the_two_events_the_classes_build(cls: type[Changed]) -> None:
    """`change_pair` (the state diff's builder of a change's two events) appends exactly
    what the keyword constructors build, in order, frozen, the second id suffixed."""
    ctx = Context("c", "e", "r", False, 2)
    out: list[object] = ["before"]
    change_pair(cls)(out, "a/t.x/3", "/sfx", AT, "a", "s", "t", ctx, None, 21.5, "x")
    common = dict(at=AT, account="a", structure="s", device="t", context=ctx, old=None)
    semantic = (
        {"attribute": "x"} if "attribute" in {f.name for f in dataclasses.fields(cls)} else {}
    )
    expected = [
        "before",
        AttributeChanged(id="a/t.x/3", new=21.5, attribute="x", **common),  # type: ignore[arg-type]
        cls(id="a/t.x/3/sfx", new=21.5, **semantic, **common),  # type: ignore[arg-type]
    ]
    assert out == expected
    assert [type(e) for e in out[1:]] == [AttributeChanged, cls]
    with pytest.raises(dataclasses.FrozenInstanceError):
        out[2].new = 1.0  # type: ignore[attr-defined]


def test_a_command_made_positionally_is_the_command_the_class_builds() -> None:
    from roost.core.commands import Command, make_command

    args = ("c1", "acct", "t1", SetHeat(21.0), AT, AT, "rule", "e1", "e0", 2, True, None)
    made = make_command(*args)
    assert type(made) is Command
    assert made == Command(*args)
    assert dataclasses.astuple(made) == dataclasses.astuple(Command(*args))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.target = "t2"  # type: ignore[misc]


def test_a_patched_entity_is_a_full_copy_with_the_new_values() -> None:
    from roost.core.model import Thermostat
    from roost.state.home_state import _with_values

    before = Thermostat(id="t1", structure_id="s1", name="Den", ambient_c=18.0, locked=True)
    after = _with_values(before, {"ambient_c": 19.0})
    assert after is not None
    assert after is not before
    assert after == dataclasses.replace(before, ambient_c=19.0)
    assert before.ambient_c == 18.0  # the held one is untouched
    assert type(after) is Thermostat
    assert hash(after) == hash(replace_ambient(before, 19.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.ambient_c = 20.0  # type: ignore[misc]
    assert _with_values(before, {"no_such_attribute": 1}) is None


def replace_ambient(device: Any, celsius: float) -> Any:
    return dataclasses.replace(device, ambient_c=celsius)


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


# ---- the guards' readers and the run's objects ------------------------------------------


def _plain_number(value: object) -> float:
    """The guards' number check as it was before its float fast path."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError
    if not math.isfinite(value):
        raise ValueError
    return float(value)


class _Celsius(float):
    pass


ODD_NUMBERS: list[object] = [
    21.0,
    -0.0,
    5e-324,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
    float("1e309"),
    True,
    False,
    3,
    10**400,
    "21",
    None,
    _Celsius(20.5),
    _Celsius(math.nan),
]


@pytest.mark.parametrize("value", ODD_NUMBERS)
def test_the_guards_number_reader_agrees_with_the_plain_check(value: object) -> None:
    from roost.commands.guards import Unknown, _number

    try:
        expected: float | None = _plain_number(value)
    except (ValueError, OverflowError):
        expected = None
    try:
        got: float | None = _number(value, "the setpoint")
    except (Unknown, OverflowError):
        got = None
    assert got == expected or (got is None and expected is None)


@pytest.mark.parametrize("low", ODD_NUMBERS)
def test_the_guards_pair_reader_agrees_with_the_plain_check(low: object) -> None:
    from roost.commands.guards import Unknown, _pair

    for value in [(low, 30.0), (9.0, low), [low, 30.0], (low,), (low, 30.0, 1.0), low]:
        try:
            expected: tuple[float, float] | None = (
                (_plain_number(value[0]), _plain_number(value[1]))  # type: ignore[index]
                if isinstance(value, tuple | list) and len(value) == 2
                else None
            )
        except (ValueError, OverflowError):
            expected = None
        try:
            got: tuple[float, float] | None = _pair(value, "the range of {!r}", "Den")
        except (Unknown, OverflowError):
            got = None
        assert got == expected, value


def test_a_subject_reads_the_setpoints_of_every_action() -> None:
    from roost.commands.guards import Limits, Subject, _cool, _heat
    from roost.core.commands import (
        Command,
        SetCool,
        SetEco,
        SetFanTimer,
        SetMode,
        SetPresence,
    )
    from roost.core.model import Presence, Thermostat, ThermostatMode

    den = Thermostat(id="t1", structure_id="s1", name="Den")
    actions = [
        SetHeat(21.0),
        SetCool(24.0),
        SetRange(19.0, 24.0),
        SetMode(ThermostatMode.HEAT),
        SetEco(True),
        SetFanTimer(15),
        SetPresence(Presence.AWAY),
    ]
    for action in actions:
        command = Command("c1", "a", "t1", action, AT, AT)
        subject = Subject(command, den, [], Limits(), 0)
        heat, cool = _heat(action), _cool(action)
        assert (subject.heat, subject.cool) == (heat, cool)
        assert subject.setpoints == tuple(v for v in (heat, cool) if v is not None)
        assert subject.thermostat is den
    assert (
        Subject(Command("c1", "a", "s1", SetEco(True), AT, AT), None, [], Limits(), 0).thermostat
        is None
    )


def test_causation_chains_are_kept_for_the_latest_events() -> None:
    """The chains are trimmed by halves: never fewer than the latest 512, never more than
    twice that; a chain still being written stays."""
    from roost.core.bus import Bus
    from roost.engine.engine import Engine
    from roost.engine.rule_home import Services
    from roost.state.echo import EchoTracker
    from roost.state.home_state import HomeState

    async def never(_: object) -> Any:
        raise AssertionError("no commands here")

    engine = Engine(Services(HomeState(Bus(), EchoTracker()), never, never, lambda: AT))
    for n in range(5_000):
        event = TemperatureChanged(id=f"e{n}", at=AT, account="a", device="t1", old=1, new=2)
        engine._remember_chain(event, "first")
        engine._remember_chain(event, "second")
        assert 512 <= len(engine._chains) <= 1024 or n < 512
    assert list(engine._chains)[-512:] == [f"e{n}" for n in range(4_488, 5_000)]
    assert engine._chains["e4999"] == ("first", "second")
    echo = TemperatureChanged(
        id="x", at=AT, account="a", device="t1", old=1, new=2, context=Context("c", "e4999")
    )
    engine._remember_chain(echo, "third")
    assert engine._chains["e4999"] == ("first", "second", "third")


def test_a_run_starts_as_a_fresh_home_and_run_guard() -> None:
    """`Run.__init__` sets its `RuleHome` and `RunGuard` fields itself (one call per run):
    every one of them, as `RuleHome.__init__` (which runs `RunGuard.__init__`) sets them."""
    from roost.core.bus import Bus
    from roost.engine.admission import RuleState
    from roost.engine.engine import Engine
    from roost.engine.isolation import RunGuard
    from roost.engine.rule_home import RuleHome, Services
    from roost.engine.runner import Run
    from roost.engine.traces import Trace
    from roost.rules.author import Rule, when
    from roost.state.echo import EchoTracker
    from roost.state.home_state import HomeState

    async def body(event: object, home: object) -> None:
        return None

    async def never(_: Any) -> Any:
        raise AssertionError("not called")

    services = Services(HomeState(Bus(), EchoTracker()), never, never, lambda: AT)
    engine = Engine(services)
    event = TemperatureChanged(id="e", at=AT, account="a", device="t1", old=1, new=2)
    rule = Rule(name="r", triggers=(when("temperature"),), body=body, dry_run=True)
    trace = Trace("r", "t", AT)
    state = RuleState()
    run = Run(services, rule, event, trace, engine, state, 0.25, 7)
    home, guard = RuleHome(services, "r", event, True, trace, engine), RunGuard(0.25, 7)
    for name in RuleHome.__slots__:
        assert getattr(run, name) == getattr(home, name), name
    for name in RunGuard.__slots__:
        assert getattr(run, name) == getattr(guard, name), name
    assert run.definition is rule
    assert run.state is state
    assert run.scope is None
    assert run.deadline().clock is services.clock


def test_an_admitted_trace_is_the_trace_its_init_makes() -> None:
    """`traces.begun` (admission's trace, one per triggered rule) sets every field as
    `Trace(...)` does: its own number, and lists of its own."""
    from roost.engine.traces import Trace, begun

    event = TemperatureChanged(id="e", at=AT, account="a", device="t1", old=1, new=2)
    made = begun("r", "when t1", AT, event, ("before",))
    plain = Trace("r", "when t1", AT, event, ("before",))
    assert type(made) is Trace
    for f in dataclasses.fields(Trace):
        if f.name != "number":
            assert getattr(made, f.name) == getattr(plain, f.name), f.name
    assert made.number != plain.number
    assert made.id != plain.id
    assert made.conditions is not plain.conditions
    assert made.steps is not plain.steps
    assert made.conditions is not begun("r", "when t1", AT, event, ()).conditions
