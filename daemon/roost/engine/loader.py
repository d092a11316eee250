"""Loading rule files: Python (`@rule` functions) and TOML (`[[rule]]` tables).

A broken file is reported with its path and line, and never stops the other files from
loading. Rule names must be unique across the whole rule directory.

TOML files are checked first (`toml_check`, with pydantic), all of them at once, by the
`check` a caller names: `check_here` in this process (`roost check`, the sandbox, tests)
or `check_in_child` (`roost run`: the daemon never imports pydantic). The checked tables
are compiled here; Python files are imported here.
"""

from __future__ import annotations

import ast
import hashlib
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.engine.toml_rules import CheckedRule, RuleProblems, compile_rule
from roost.host.child import run_in_child
from roost.rules.author import Rule, collecting, stop_collecting
from roost.rules.check import python_problems

# How long a Python rule file's top level may run: a file that never finishes importing
# would hold the start (never READY) or, on a reload, the event loop and every alarm.
IMPORT_BUDGET_S = 10.0


@dataclass(frozen=True)
class RuleError:
    path: Path
    line: int
    message: str
    rule: str | None = None  # the rule it is about, when the file names it

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class RuleFileError(Exception):
    def __init__(self, error: RuleError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class CheckedToml:
    """A TOML rule file checked: the rules that passed, an error for each problem. Plain
    data: it comes back pickled from the child that checked it."""

    path: Path
    rules: tuple[CheckedRule, ...]
    errors: tuple[RuleError, ...]


TomlCheck = Callable[[Sequence[Path]], Sequence[CheckedToml]]


def check_here(paths: Sequence[Path]) -> list[CheckedToml]:
    """Check TOML rule files in this process (imports pydantic)."""
    if not paths:
        return []
    from roost.engine.toml_check import check_files

    return check_files(paths)


CHECKER = "roost.engine.toml_check:check_files"
# A spawned checker takes ~0.6 s; one that hangs must not hold a reload (and a SIGTERM
# waiting behind it) for long.
CHECK_TIMEOUT_S = 60.0


def check_in_child(paths: Sequence[Path]) -> list[CheckedToml]:
    """Check TOML rule files in one child process (`host.child`; blocks: from the event
    loop, call it in a worker thread). A child that fails is an error for each file, so a
    reload keeps their previous rules."""
    if not paths:
        return []
    try:
        checked: list[CheckedToml] = run_in_child(CHECKER, list(paths), timeout=CHECK_TIMEOUT_S)
    except Exception as exc:  # whatever ended the child: these files are not loaded
        message = f"not checked: the TOML rule checker failed ({type(exc).__name__}: {exc})"
        return [CheckedToml(path, (), (RuleError(path, 0, message),)) for path in paths]
    return checked


@dataclass
class LoadResult:
    rules: list[Rule]
    errors: list[RuleError]
    files: list[Path]


def rule_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".py", ".toml")
        and not p.name.startswith(("_", "."))
        and not p.name.startswith("test_")
        and p.name != "conftest.py"
    )


def toml_files(files: Sequence[Path]) -> list[Path]:
    return [path for path in files if path.suffix == ".toml"]


def listing(directory: Path) -> list[Path]:
    """The rule files of a directory; none when it does not exist (`load_checked` says so)."""
    return rule_files(directory) if directory.is_dir() else []


def load_directory(directory: Path, check: TomlCheck = check_here) -> LoadResult:
    files = listing(directory)
    return load_checked(directory, files, check(toml_files(files)))


def load_checked(directory: Path, files: list[Path], checked: Sequence[CheckedToml]) -> LoadResult:
    """The rules of `files`: the TOML ones as `checked` found them, the Python ones imported."""
    rules: list[Rule] = []
    errors: list[RuleError] = []
    if not directory.is_dir():
        errors.append(RuleError(directory, 0, "rule directory does not exist"))
    by_path = {c.path: c for c in checked}
    seen: dict[str, Rule] = {}
    for path in files:
        loaded, problems = _read(path, by_path)
        errors.extend(problems)
        for r in loaded:
            if r.name in seen:
                line = _source_line(r.source)
                msg = f"rule name {r.name!r} is already used at {seen[r.name].source}"
                errors.append(RuleError(path, line, msg))
                continue
            seen[r.name] = r
            rules.append(r)
    return LoadResult(rules, errors, files)


def load_file(path: Path, check: TomlCheck = check_here) -> list[Rule]:
    """Every rule of one file; the file's first error is raised as `RuleFileError`."""
    rules, errors = read_file(path, check)
    if errors:
        raise RuleFileError(errors[0])
    return rules


def read_file(path: Path, check: TomlCheck = check_here) -> tuple[list[Rule], list[RuleError]]:
    """The rules of one file that load, and an error for each one that does not."""
    checked = check(toml_files([path]))
    return _read(path, {c.path: c for c in checked})


def _read(path: Path, checked: dict[Path, CheckedToml]) -> tuple[list[Rule], list[RuleError]]:
    try:
        rules, errors = load_toml(path, checked) if path.suffix == ".toml" else load_python(path)
    except RuleFileError as exc:
        return [], [exc.error]
    digest = _fingerprint(path)
    for r in rules:
        r.path = str(path)
        r.fingerprint = digest
    return rules, errors


def _fingerprint(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return ""


def keep_previous(result: LoadResult, previous: list[Rule]) -> LoadResult:
    """A reload: each file that no longer loads keeps the rules it had before.

    Returns the merged result (the errors are still reported); rule names already taken by
    the new set win over the kept ones.
    """
    kept = [r for r in previous if kept_previous(result, r)]
    return LoadResult([*result.rules, *kept], result.errors, result.files)


def kept_previous(result: LoadResult, previous: Rule) -> bool:
    """Whether this rule of the running set stays, because its new version does not load:
    its whole file failed, or the error is about this rule by name."""
    if previous.name in {r.name for r in result.rules}:
        return False
    loaded = {r.path for r in result.rules}
    return any(
        str(e.path) == previous.path and (e.rule == previous.name or previous.path not in loaded)
        for e in result.errors
    )


def _source_line(source: str) -> int:
    tail = source.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# ---- Python ----------------------------------------------------------------------------


def load_python(path: Path) -> tuple[list[Rule], list[RuleError]]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        code = compile(tree, str(path), "exec")
    except SyntaxError as exc:
        raise RuleFileError(RuleError(path, exc.lineno or 0, f"syntax error: {exc.msg}")) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(RuleError(path, 0, f"cannot read: {exc}")) from exc
    module = types.ModuleType(f"roost_rules.{path.stem}")
    module.__file__ = str(path)
    found, token = collecting()
    try:
        sys.modules[module.__name__] = module
        with _import_budget(IMPORT_BUDGET_S):
            exec(code, module.__dict__)
    # SystemExit too: a rule file's `sys.exit()` must not end `roost run` or `roost check`
    except (Exception, SystemExit, _ImportTooLong) as exc:
        sys.modules.pop(module.__name__, None)
        line = _line_in(exc, path)
        raise RuleFileError(RuleError(path, line, _import_error(exc))) from exc
    finally:
        stop_collecting(token)
    if not found:
        raise RuleFileError(RuleError(path, 1, "no rules: decorate an async function with @rule"))
    return _checked(path, tree, found)


class _ImportTooLong(BaseException):
    """Raised inside a rule file's top level that overran its budget (a BaseException, so
    the file's own `except Exception` does not swallow it)."""


@contextmanager
def _import_budget(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds` with `_ImportTooLong` (SIGALRM: it ends Python
    loops and blocking sleeps alike). Only the main thread receives signals; elsewhere the
    block runs unbounded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    armed = True

    def overran(signum: int, frame: Any) -> None:
        if armed:
            raise _ImportTooLong

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _import_error(exc: BaseException) -> str:
    if isinstance(exc, _ImportTooLong):
        return f"import took longer than {IMPORT_BUDGET_S:g} s (a loop or a blocking call?)"
    return f"{type(exc).__name__}: {exc}"


def _checked(path: Path, tree: ast.Module, found: list[Rule]) -> tuple[list[Rule], list[RuleError]]:
    """Attach the names each rule uses; a rule whose code can only fail is refused."""
    problems, references = python_problems(tree)
    spans = {_source_line(r.source): r for r in found}
    owner: dict[int, Rule] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            r = spans.get(first) or spans.get(node.lineno)
            for line in range(first, (node.end_lineno or node.lineno) + 1):
                if r is not None:
                    owner[line] = r
    for r in found:
        r.references = tuple(ref for ref in references if owner.get(ref.line) is r)
    errors = [
        RuleError(path, line, _named(owner.get(line), message), _name(owner.get(line)))
        for line, message in problems
    ]
    refused = {e.rule for e in errors}
    return [r for r in found if r.name not in refused], errors


def _name(r: Rule | None) -> str | None:
    return r.name if r is not None else None


def _named(r: Rule | None, message: str) -> str:
    return f"rule {r.name!r}: {message}" if r is not None else message


def _line_in(exc: BaseException, path: Path) -> int:
    """The line of the innermost frame in the rule file itself."""
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno or 0
    return line


# ---- TOML ------------------------------------------------------------------------------


def load_toml(path: Path, checked: dict[Path, CheckedToml]) -> tuple[list[Rule], list[RuleError]]:
    """The rules the check passed, compiled; the errors it found."""
    found = checked.get(path)
    if found is None:
        raise RuleFileError(RuleError(path, 0, "not checked: the checker gave no answer for it"))
    rules, errors = [], list(found.errors)
    for spec in found.rules:
        try:
            rules.append(compile_rule(spec, f"{path}:{spec.line}"))
        except RuleProblems as exc:
            where = f"rule {exc.rule!r}: " if exc.rule else ""
            for _, message in exc.problems:
                errors.append(RuleError(path, spec.line, f"{where}{message}", exc.rule))
    return rules, sorted(errors, key=lambda e: e.line)
