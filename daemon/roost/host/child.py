"""Call a function in another process and get back what it returns.

The daemon reads its configuration and TOML rule files this way: pydantic validates them in
a short-lived child, and the daemon, which never imports pydantic (~10 MiB of idle RSS), gets
plain dataclasses back, pickled over a pipe. Whatever the function returns or raises must be
picklable, and its classes importable without pydantic: unpickling imports their modules here.

While the process has one thread (start-up) the child is a fork: it costs what importing
pydantic here would have cost, and no more. Once other threads run, forking could copy a
lock another thread holds, so the child is a fresh `python -m roost.host.child` (~0.5 s,
fine for a reload), which reads (target, args) pickled on stdin and writes its answer,
("ok", result) or ("error", exception), pickled on stdout.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding roost/


class ChildFailed(RuntimeError):
    """The child ended without an answer (killed, crashed, out of time)."""


def run_in_child(target: str, *args: Any, timeout: float = 120.0) -> Any:
    """`target(*args)` (target = "package.module:function") in a child process: its result,
    or its exception raised here. Blocks; from the event loop call it in a worker thread."""
    if threading.active_count() == 1 and hasattr(os, "fork"):
        answer, status = _forked(target, args)
    else:
        answer, status = _spawned(target, args, timeout)
    try:
        kind, value = pickle.loads(answer)
    except Exception:
        raise ChildFailed(f"{target} ended with status {status} and no answer") from None
    if kind == "error":
        raise value
    return value


def _spawned(target: str, args: tuple[Any, ...], timeout: float) -> tuple[bytes, int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "roost.host.child"],
            input=pickle.dumps((target, args)),
            stdout=subprocess.PIPE,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ChildFailed(f"{target} took longer than {timeout:g} s") from None
    return done.stdout, done.returncode


def _forked(target: str, args: tuple[Any, ...]) -> tuple[bytes, int]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, and never return into the parent's code
        try:
            os.close(read_end)
            signal.set_wakeup_fd(-1)
            for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(number, signal.SIG_DFL)
            with os.fdopen(write_end, "wb") as out:
                out.write(pickle.dumps(_answer(target, args)))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    _, wait_status = os.waitpid(pid, 0)
    return data, os.waitstatus_to_exitcode(wait_status)


def _answer(target: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    module, _, name = target.partition(":")
    try:
        return "ok", getattr(importlib.import_module(module), name)(*args)
    except Exception as exc:  # every failure goes back to the caller
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        return "error", exc


def main() -> None:
    target, args = pickle.loads(sys.stdin.buffer.read())
    answer_to = sys.stdout.buffer
    sys.stdout = sys.stderr  # a print() in the function must not corrupt the answer
    answer_to.write(pickle.dumps(_answer(target, args)))
    answer_to.flush()


if __name__ == "__main__":
    main()
