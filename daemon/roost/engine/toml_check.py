"""Checking TOML rule files: each `[[rule]]` table given its types by pydantic and checked
as the daemon will compile it, every problem reported with the line it is at.

`roost run` calls `check_files` in a child process (`loader.check_in_child`): the daemon
gets back plain data, per file the checked rules and the errors, and compiles the rules
itself without importing pydantic. `roost check`, the sandbox and tests call it in-process
(`loader.check_here`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from roost.engine.loader import CheckedToml, RuleError
from roost.engine.toml_lines import key_line, line_at, locate
from roost.engine.toml_rules import (
    CheckedRule,
    Loc,
    Problem,
    RuleProblems,
    compile_rule,
    problems_of,
    references,
)
from roost.host.faults import fault_point
from roost.rules import toml_model as m
from roost.rules.check import Reference
from roost.rules.toml_schema import validate_rule

_RULE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*rule[ \t]*\]\]", re.MULTILINE)
_TOML_LINE = re.compile(r"at line (\d+)")


def check_files(paths: Sequence[Path]) -> list[CheckedToml]:
    """Every file checked; what is returned is plain data (it is pickled to the daemon)."""
    fault_point("toml_check")  # the fault suite's checker that dies (a reload keeps the rules)
    return [check_file(path) for path in paths]


def check_file(path: Path) -> CheckedToml:
    try:
        return _check_file(path)
    except Exception as exc:  # a checker bug costs this file, and must reach the daemon as text
        message = f"could not be checked: {type(exc).__name__}: {exc}"
        return CheckedToml(path, (), (RuleError(path, 0, message),))


def _check_file(path: Path) -> CheckedToml:
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        line = int(match.group(1)) if match else 0
        return CheckedToml(path, (), (RuleError(path, line, f"TOML syntax: {exc}"),))
    except (OSError, UnicodeDecodeError) as exc:
        return CheckedToml(path, (), (RuleError(path, 0, f"cannot read: {exc}"),))
    errors = [
        RuleError(
            path,
            key_line(text, key),
            f"unknown top-level key {key!r}; rules go in [[rule]] tables",
        )
        for key in sorted(set(data) - {"rule"})
    ]
    tables = data.get("rule", [])
    starts = [found.start() for found in _RULE_HEADER.finditer(text)]
    rules = []
    for i, table in enumerate(tables):
        start = starts[i] if i < len(starts) else 0
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        line = line_at(text, start)

        def line_of(loc: Loc, start: int = start, end: int = end) -> int:
            return line_at(text, locate(text, start, end, loc))

        try:
            rules.append(check_rule(table, line, line_of))
        except RuleProblems as exc:
            where = f"rule {exc.rule!r}: " if exc.rule else ""
            for loc, message in exc.problems:
                errors.append(RuleError(path, line_of(loc), f"{where}{message}", exc.rule))
    if not tables and not errors:
        errors.append(RuleError(path, 1, "no rules: add a [[rule]] table"))
    return CheckedToml(path, tuple(rules), tuple(sorted(errors, key=lambda e: e.line)))


def check_rule(
    table: Any, line: int = 0, line_of: Callable[[Loc], int] | None = None
) -> CheckedRule:
    """One `[[rule]]` table checked, or `RuleProblems` listing every error in it. `line_of`
    says where a key is written (for the names the rule uses)."""
    problems: list[Problem] = []
    deferred: list[Problem] = []  # the model's word where the precise one is missing
    name = table.get("name") if isinstance(table, dict) else None
    spec = _validate(table, problems, deferred)
    problems.extend(problems_of(table, spec))
    if spec is None or problems:
        raise RuleProblems(name if isinstance(name, str) else None, problems or deferred)
    at = line_of or (lambda loc: 0)
    used = tuple(Reference(kind, value, at(loc)) for kind, value, loc in references(table, spec))
    checked = CheckedRule(spec, table, line, used)
    compile_rule(checked, "")  # as the daemon will: what it would refuse is refused here
    return checked


def _validate(table: Any, problems: list[Problem], deferred: list[Problem]) -> m.RuleTable | None:
    if not isinstance(table, dict):
        problems.append(((), "a rule is a [[rule]] table"))
        return None
    try:
        return validate_rule(table)
    except ValidationError as exc:
        for error in exc.errors():
            loc = _data_loc(table, error["loc"])
            # `on` and `condition` get their precise messages from triggers/conditions.
            if loc[:1] in (("on",), ("condition",)) and len(loc) > 1:
                deferred.append((loc, _message(loc, error)))
                continue
            problems.append((loc, _message(loc, error)))
        return None


def _data_loc(data: Any, loc: Sequence[int | str]) -> Loc:
    """pydantic's loc without the union tags it inserts: the keys as written in the file."""
    out: list[int | str] = []
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if _has(data, part):
            data = data[part]
        elif not last:
            continue  # a union tag pydantic inserted
        out.append(part)
    return tuple(out)


def _has(data: Any, part: int | str) -> bool:
    if isinstance(data, dict):
        return part in data
    return isinstance(data, list) and isinstance(part, int) and part < len(data)


# A key no table has: pydantic says "extra_forbidden" for a model, this for a dataclass.
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")


def _message(loc: Loc, error: Any) -> str:
    key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in loc).replace(".[", "[")
    kind = error["type"]
    given = error.get("input")
    if kind in _UNKNOWN_KEY:
        where = "a rule" if len(loc) == 1 else "this table"
        known = ", ".join(sorted(m.RULE_KEYS)) if len(loc) == 1 else ""
        return f"unknown key {loc[-1]!r} in {where}" + (f"; a rule has: {known}" if known else "")
    if kind == "missing":
        return f"missing {loc[-1]!r}" if loc else "missing key"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        known = ", ".join(m.ACTION_NAMES)
        action = given.get("action") if isinstance(given, dict) else None
        what = f"unknown action {action!r}" if action else "an action needs action = ..."
        return f"{what}; known actions: {known}"
    if kind == "list_type" and loc[-1:] == ("tags",):
        return f'tags is a list: tags = ["{given}"], not tags = {given!r}'
    if kind == "list_type":
        return f"{key} is a list of tables, not {given!r}"
    detail = str(error["msg"]).removeprefix("Value error, ")
    if kind == "dataclass_type":  # in the words the messages had when the tables were models
        detail = f"Input should be a valid dictionary or instance of {error['ctx']['class_name']}"
    return f"{key}: {detail} (not {given!r})"
