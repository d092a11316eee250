"""Call a function in a fresh interpreter and get back what it returns.

The daemon reads its configuration and TOML rule files this way: pydantic validates them
in a short-lived child, and the daemon, which never imports pydantic (~10 MiB of idle RSS),
gets the plain dataclasses back, pickled over a pipe. Whatever the function returns or
raises must be picklable, and its classes importable without pydantic: unpickling imports
their modules here.

    python -m roost.host.child      reads (target, args) pickled on stdin, where target is
                                    "package.module:function", and writes ("ok", result) or
                                    ("error", exception) pickled on stdout
"""

from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding roost/


class ChildFailed(RuntimeError):
    """The child ended without an answer (killed, crashed, out of time)."""


def run_in_child(target: str, *args: Any, timeout: float = 120.0) -> Any:
    """`target(*args)` in a new `python -m roost.host.child`: its result, or its exception
    raised here. Blocks; from the event loop call it through `anyio.to_thread.run_sync`."""
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
    try:
        status, value = pickle.loads(done.stdout)
    except Exception:
        raise ChildFailed(f"{target} ended with status {done.returncode} and no answer") from None
    if status == "error":
        raise value
    return value


def _answer(target: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    module, _, name = target.partition(":")
    try:
        return "ok", getattr(importlib.import_module(module), name)(*args)
    except Exception as exc:
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
