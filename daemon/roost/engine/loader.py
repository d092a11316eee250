"""Loading rule files: Python (`@rule` functions) and TOML (`[[rule]]` tables).

A broken file is reported with its path and line, and never stops the other files from
loading. Rule names must be unique across the whole rule directory.
"""

from __future__ import annotations

import ast
import hashlib
import re
import signal
import sys
import threading
import tomllib
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roost.engine.toml_rules import RuleProblems, compile_rule
from roost.rules.author import Rule, collecting, stop_collecting
from roost.rules.check import python_problems

_RULE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*rule[ \t]*\]\]", re.MULTILINE)
_TOML_LINE = re.compile(r"at line (\d+)")
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


def load_directory(directory: Path) -> LoadResult:
    rules: list[Rule] = []
    errors: list[RuleError] = []
    files = rule_files(directory) if directory.is_dir() else []
    if not directory.is_dir():
        errors.append(RuleError(directory, 0, "rule directory does not exist"))
    seen: dict[str, Rule] = {}
    for path in files:
        loaded, problems = read_file(path)
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


def load_file(path: Path) -> list[Rule]:
    """Every rule of one file; the file's first error is raised as `RuleFileError`."""
    rules, errors = read_file(path)
    if errors:
        raise RuleFileError(errors[0])
    return rules


def read_file(path: Path) -> tuple[list[Rule], list[RuleError]]:
    """The rules of one file that load, and an error for each one that does not."""
    try:
        rules, errors = load_toml(path) if path.suffix == ".toml" else load_python(path)
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


def load_toml(path: Path) -> tuple[list[Rule], list[RuleError]]:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        line = int(match.group(1)) if match else 0
        raise RuleFileError(RuleError(path, line, f"TOML syntax: {exc}")) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(RuleError(path, 0, f"cannot read: {exc}")) from exc
    errors = [
        RuleError(
            path,
            _key_line(text, key),
            f"unknown top-level key {key!r}; rules go in [[rule]] tables",
        )
        for key in sorted(set(data) - {"rule"})
    ]
    tables = data.get("rule", [])
    starts = [m.start() for m in _RULE_HEADER.finditer(text)]
    rules = []
    for i, table in enumerate(tables):
        start = starts[i] if i < len(starts) else 0
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        line = _line_at(text, start)

        def line_of(loc: tuple[int | str, ...], start: int = start, end: int = end) -> int:
            return _line_at(text, locate(text, start, end, loc))

        try:
            rules.append(compile_rule(table, f"{path}:{line}", line_of))
        except RuleProblems as exc:
            where = f"rule {exc.rule!r}: " if exc.rule else ""
            for loc, message in exc.problems:
                at = line_of(loc)
                errors.append(RuleError(path, at, f"{where}{message}", exc.rule))
    if not tables and not errors:
        errors.append(RuleError(path, 1, "no rules: add a [[rule]] table"))
    return rules, sorted(errors, key=lambda e: e.line)


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def locate(text: str, start: int, end: int, loc: tuple[int | str, ...]) -> int:
    """Best effort: the offset in text[start:end] (one [[rule]]) where the key at `loc` is
    written, e.g. ("do", 1, "tags"), for inline tables, lists and [[rule.do]] alike."""
    position = start
    for index, part in enumerate(loc):
        if isinstance(part, int):
            parent = loc[index - 1] if index else ""
            position, end = _element(text, position, end, str(parent), part)
            continue
        match = _key_pattern(part).search(text, position, end)
        if match is None:
            break
        position = match.start() + (len(match.group(0)) - len(match.group(0).lstrip("\n\t {,")))
    return position


def _key_pattern(key: str) -> re.Pattern[str]:
    name = re.escape(key)
    assignment = rf"(?:^|[\s{{,])\"?{name}\"?[ \t]*="
    header = rf"^[ \t]*\[\[?[ \t]*rule\.{name}[ \t]*\]"
    return re.compile(rf"(?m){assignment}|{header}")


def _element(text: str, position: int, end: int, parent: str, index: int) -> tuple[int, int]:
    """The span of the index-th element of the list at `position` (`key = [ ... ]`), or of
    the index-th `[[rule.key]]` table."""
    headers = list(
        re.finditer(rf"(?m)^[ \t]*\[\[[ \t]*rule\.{re.escape(parent)}[ \t]*\]\]", text[:end])
    )
    headers = [h for h in headers if h.start() >= position]
    if headers:
        if index >= len(headers):
            return position, end
        stop = headers[index + 1].start() if index + 1 < len(headers) else end
        return headers[index].start(), stop
    opening = text.find("[", position, end)
    equals = text.find("=", position, end)
    if opening < 0 or (equals >= 0 and text[equals + 1 : opening].strip()):
        return position, end  # not a list: one table stands for a list of one
    starts = _list_elements(text, opening + 1, end)
    if index >= len(starts):
        return position, end
    stop = starts[index + 1] if index + 1 < len(starts) else end
    return starts[index], stop


def _list_elements(text: str, i: int, end: int) -> list[int]:
    """Where each element of a TOML array starts (`i` is just after its `[`)."""
    starts: list[int] = []
    depth, quote, expect = 0, "", True
    while i < end:
        char = text[i]
        if quote:
            if char == quote and text[i - 1] != "\\":
                quote = ""
        elif char == "#":
            i = text.find("\n", i, end) if "\n" in text[i:end] else end
            continue
        elif depth == 0 and char == "]":
            break
        elif depth == 0 and char == ",":
            expect = True
        elif not char.isspace():
            if depth == 0 and expect:
                starts.append(i)
                expect = False
            if char in "\"'":
                quote = char
            elif char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
        i += 1
    return starts


def _key_line(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith((key, f"[{key}")):
            return number
    return 0
