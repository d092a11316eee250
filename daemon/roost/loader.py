"""Loading rule files: Python (`@rule` functions) and TOML (`[[rule]]` tables).

A broken file is reported with its path and line, and never stops the other files from
loading. Rule names must be unique across the whole rule directory.
"""

from __future__ import annotations

import hashlib
import re
import sys
import tomllib
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

from roost.rules import Rule, RuleDefinitionError, collecting, stop_collecting
from roost.toml_rules import compile_rule

_RULE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*rule[ \t]*\]\]", re.MULTILINE)
_TOML_LINE = re.compile(r"at line (\d+)")


@dataclass(frozen=True)
class RuleError:
    path: Path
    line: int
    message: str

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
        try:
            loaded = load_file(path)
        except RuleFileError as exc:
            errors.append(exc.error)
            continue
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
    rules = load_toml(path) if path.suffix == ".toml" else load_python(path)
    digest = _fingerprint(path)
    for r in rules:
        r.path = str(path)
        r.fingerprint = digest
    return rules


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
    broken = {str(e.path) for e in result.errors}
    names = {r.name for r in result.rules}
    kept = [r for r in previous if r.path in broken and r.name not in names]
    return LoadResult([*result.rules, *kept], result.errors, result.files)


def _source_line(source: str) -> int:
    tail = source.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# ---- Python ----------------------------------------------------------------------------


def load_python(path: Path) -> list[Rule]:
    try:
        code = compile(path.read_text(encoding="utf-8"), str(path), "exec")
    except SyntaxError as exc:
        raise RuleFileError(RuleError(path, exc.lineno or 0, f"syntax error: {exc.msg}")) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(RuleError(path, 0, f"cannot read: {exc}")) from exc
    module = types.ModuleType(f"roost_rules.{path.stem}")
    module.__file__ = str(path)
    found, token = collecting()
    try:
        sys.modules[module.__name__] = module
        exec(code, module.__dict__)
    except Exception as exc:
        sys.modules.pop(module.__name__, None)
        line = _line_in(exc, path)
        raise RuleFileError(RuleError(path, line, f"{type(exc).__name__}: {exc}")) from exc
    finally:
        stop_collecting(token)
    if not found:
        raise RuleFileError(RuleError(path, 1, "no rules: decorate an async function with @rule"))
    return found


def _line_in(exc: BaseException, path: Path) -> int:
    """The line of the innermost frame in the rule file itself."""
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno or 0
    return line


# ---- TOML ------------------------------------------------------------------------------


def load_toml(path: Path) -> list[Rule]:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        line = int(match.group(1)) if match else 0
        raise RuleFileError(RuleError(path, line, f"TOML syntax: {exc}")) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(RuleError(path, 0, f"cannot read: {exc}")) from exc
    extra = set(data) - {"rule"}
    if extra:
        msg = f"unknown top-level key {sorted(extra)[0]!r}; rules go in [[rule]] tables"
        raise RuleFileError(RuleError(path, _key_line(text, sorted(extra)[0]), msg))
    tables = data.get("rule", [])
    lines = [text.count("\n", 0, m.start()) + 1 for m in _RULE_HEADER.finditer(text)]
    rules = []
    for i, table in enumerate(tables):
        line = lines[i] if i < len(lines) else 0
        try:
            rules.append(compile_rule(table, f"{path}:{line}"))
        except (RuleDefinitionError, ValueError) as exc:
            name = table.get("name") if isinstance(table, dict) else None
            where = f"rule {name!r}: " if name else ""
            raise RuleFileError(RuleError(path, line, f"{where}{exc}")) from exc
    if not rules:
        raise RuleFileError(RuleError(path, 1, "no rules: add a [[rule]] table"))
    return rules


def _key_line(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith((key, f"[{key}")):
            return number
    return 0
