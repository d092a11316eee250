"""A rule run's first stretch (`isolation.first_stretch`) runs its coroutine through a
stepper: a body that returns ends it as a returning call would, and a body that waits keeps
its stepper, which the task that goes on drives to the end (`guarded_steps`)."""

from __future__ import annotations

import types
from collections.abc import Generator
from typing import Any

import pytest

from roost.engine.isolation import RunGuard, first_stretch, guarded_steps


class Waits:
    """What a coroutine awaits here: yields `what` once, is sent the answer."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __await__(self) -> Generator[str, Any, Any]:
        return (yield self.what)


def never_slow(seconds: float) -> None:
    raise AssertionError(f"a stretch took {seconds}s")


def stretch(coro: Any) -> tuple[Any, Any]:
    return first_stretch(coro, RunGuard(), None, 10.0, never_slow)


def test_a_body_that_returns_ends_in_its_first_stretch() -> None:
    seen: list[int] = []

    async def body(n: int) -> None:
        seen.append(n)

    for n in range(3):
        assert stretch(body(n)) == (None, None)
    assert seen == [0, 1, 2]


def test_a_body_that_waits_goes_on_through_its_stepper_to_the_end() -> None:
    seen: list[str] = []

    async def waits() -> None:
        seen.append(await Waits("first"))
        seen.append(await Waits("second"))

    async def returns() -> None:
        seen.append("other run")

    rest, waits_for = stretch(waits())
    assert rest is not None
    assert waits_for == "first"
    assert stretch(returns()) == (None, None)  # another run meanwhile: its own stepper
    steps = guarded_steps(rest, RunGuard(), None, 10.0, never_slow, waits_for)
    assert steps.send(None) == "first"  # what the task that goes on waits on first
    assert steps.send("a") == "second"
    with pytest.raises(StopIteration):
        steps.send("b")
    assert seen == ["other run", "a", "b"]


def test_a_body_that_raises_in_its_first_stretch_raises_and_the_next_runs() -> None:
    async def fails() -> None:
        raise ValueError("a rule's bug")

    async def returns() -> None:
        return None

    with pytest.raises(ValueError, match="a rule's bug"):
        stretch(fails())
    assert stretch(returns()) == (None, None)


def test_a_waiting_body_whose_run_is_stopped_is_closed() -> None:
    cleaned: list[str] = []

    async def waits() -> None:
        try:
            await Waits("forever")
        finally:
            cleaned.append("closed")

    rest, _ = stretch(waits())
    assert rest is not None
    rest.close()
    assert cleaned == ["closed"]


def test_an_error_thrown_into_a_waiting_body_reaches_it() -> None:
    caught: list[str] = []

    async def waits() -> None:
        try:
            await Waits("x")
        except KeyError as exc:
            caught.append(str(exc))

    rest, waits_for = stretch(waits())
    assert rest is not None
    steps = guarded_steps(rest, RunGuard(), None, 10.0, never_slow, waits_for)
    assert steps.send(None) == "x"
    with pytest.raises(StopIteration):
        steps.throw(KeyError("cancelled"))
    assert caught == ["'cancelled'"]


def test_a_generator_based_coroutine_is_stepped_too() -> None:
    @types.coroutine
    def old_style() -> Generator[str, Any, None]:
        yield "once"

    async def body() -> None:
        await old_style()

    rest, waits_for = stretch(body())
    assert rest is not None
    assert waits_for == "once"
