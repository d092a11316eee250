"""host/child.py: a function called in a fresh interpreter, its result or its exception back."""

from __future__ import annotations

import os

import pytest

from roost.host.child import ChildFailed, run_in_child


def child_pid_and(value: int) -> tuple[int, int]:
    print("chatter on stdout")  # must not corrupt the answer
    return os.getpid(), value * 2


def raises_value_error(message: str) -> None:
    raise ValueError(message)


class Unpicklable(Exception):
    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("not picklable")


def raises_unpicklable() -> None:
    raise Unpicklable("the message")


def dies() -> None:
    os._exit(3)


STATE = {"touched": False}


def touched() -> bool:
    return STATE["touched"]


def test_the_result_comes_back_from_another_process() -> None:
    pid, doubled = run_in_child("tests.test_child:child_pid_and", 21)
    assert doubled == 42
    assert pid != os.getpid()


def test_an_exception_is_raised_here_with_its_type_and_message() -> None:
    with pytest.raises(ValueError, match="line 3: bad value"):
        run_in_child("tests.test_child:raises_value_error", "line 3: bad value")


def test_an_exception_that_cannot_travel_arrives_as_its_text() -> None:
    with pytest.raises(RuntimeError, match="Unpicklable: the message"):
        run_in_child("tests.test_child:raises_unpicklable")


def test_a_child_that_dies_is_a_clear_failure() -> None:
    with pytest.raises(ChildFailed, match="status 3"):
        run_in_child("tests.test_child:dies")


def test_the_child_starts_clean() -> None:
    """What this process changed is not in the child: a fresh interpreter, not a fork."""
    STATE["touched"] = True
    try:
        assert run_in_child("tests.test_child:touched") is False
    finally:
        STATE["touched"] = False
