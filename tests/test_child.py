"""host/child.py: a function called in a fresh interpreter, its result or its exception back."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

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


def test_the_result_comes_back_from_another_process(kind: str) -> None:
    pid, doubled = run_in_child("tests.test_child:child_pid_and", 21)
    assert doubled == 42
    assert pid != os.getpid()


def test_an_exception_is_raised_here_with_its_type_and_message(kind: str) -> None:
    with pytest.raises(ValueError, match="line 3: bad value"):
        run_in_child("tests.test_child:raises_value_error", "line 3: bad value")


def test_an_exception_that_cannot_travel_arrives_as_its_text(kind: str) -> None:
    with pytest.raises(RuntimeError, match="Unpicklable: the message"):
        run_in_child("tests.test_child:raises_unpicklable")


def test_a_child_that_dies_is_a_clear_failure(kind: str) -> None:
    with pytest.raises(ChildFailed, match="status 3"):
        run_in_child("tests.test_child:dies")


def imports_pydantic() -> bool:
    import pydantic  # noqa: F401

    return True


@pytest.fixture(params=["fork", "spawn"])
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """One thread: the child is a fork. Another thread running: a fresh interpreter."""
    if request.param == "fork":
        yield "fork"
        return
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        yield "spawn"
    finally:
        stop.set()
        other.join()


def test_the_childs_imports_stay_in_the_child(kind: str) -> None:
    saved = {n: m for n, m in sys.modules.items() if n == "pydantic" or n.startswith("pydantic.")}
    for name in saved:
        del sys.modules[name]
    try:
        assert run_in_child("tests.test_child:imports_pydantic") is True
        assert "pydantic" not in sys.modules
    finally:
        sys.modules.update(saved)


def test_a_fresh_interpreter_once_other_threads_run(kind: str) -> None:
    """What this process changed reaches a fork, never a fresh interpreter. The fork case
    runs in an interpreter of its own: in a whole test run this one holds threads earlier
    tests left (apprise's shared executor, from the in-process notifier tests), and no
    longer forks."""
    if kind == "fork":
        code = (
            "from tests import test_child as t; from roost.host.child import run_in_child; "
            "t.STATE['touched'] = True; print(run_in_child('tests.test_child:touched'))"
        )
        root = Path(__file__).parent.parent
        ran = subprocess.run(
            [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.split()[-1] == "True"
        return
    STATE["touched"] = True
    try:
        assert run_in_child("tests.test_child:touched") is (kind == "fork")
    finally:
        STATE["touched"] = False
