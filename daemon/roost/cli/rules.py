"""The rule commands of `roost`: check, trace, reload, replay."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from roost.cli import terminal
from roost.core.codec import dumps


def add_commands(sub: Any) -> None:
    """Register the subcommands on the `roost` parser's subparsers."""
    check = sub.add_parser(
        "check",
        help="validate the settings and every rule file (no cloud is contacted)",
        description="Exit status 0 if everything loads, 1 otherwise; each problem is printed "
        "as FILE:LINE: MESSAGE (for editors and pre-commit hooks).",
    )
    check.add_argument("files", nargs="*", type=Path, help="only these rule files")
    check.add_argument("--config", type=Path, help="the TOML settings file")
    check.add_argument("--rules", type=Path, help="rule directory (default: from the settings)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=check_command)

    trace = sub.add_parser("trace", help="the latest traces of the running daemon's rules")
    trace.add_argument("rule", nargs="?", help="only this rule")
    trace.add_argument("-n", "--limit", type=int, default=10, help="how many (default 10)")
    trace.add_argument("--json", action="store_true", help="one JSON object per line")
    _socket_options(trace)
    trace.set_defaults(func=trace_command)

    reload = sub.add_parser("reload", help="reload the running daemon's rule files")
    reload.add_argument("--json", action="store_true", help="machine-readable output")
    _socket_options(reload)
    reload.set_defaults(func=reload_command)

    replay = sub.add_parser(
        "replay", help="what would these rules have done with recorded events? (dry run)"
    )
    replay.add_argument("events", type=Path, help="a JSON-lines event recording")
    replay.add_argument("--rules", type=Path, required=True, help="rule directory or file")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.set_defaults(func=replay_command)


def _socket_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="the TOML settings file")
    parser.add_argument("--socket", type=Path, help="the control socket (default: from settings)")


def _settings(path: Path | None) -> Any:
    from roost.config.load import load_settings
    from roost.config.settings import ConfigError

    try:
        return load_settings(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)


def check_command(args: argparse.Namespace) -> int:
    from roost.cli.privileges import may_run_rule_code
    from roost.config.settings import remote_listeners
    from roost.engine.loader import LoadResult, RuleError, load_directory, read_file

    settings = _settings(args.config)
    for listener in remote_listeners(settings):
        print(
            f"warning: {listener} is reachable from other machines (allow_remote = true); "
            "roost speaks plain HTTP: put a TLS proxy or a firewall in front of it",
            file=sys.stderr,
        )
    rules_dir = args.rules or settings.daemon.rules_dir
    candidates = list(args.files) or _all_files(rules_dir)
    allowed, note = may_run_rule_code(settings.daemon.state_dir, [rules_dir, *candidates])
    if note:
        print(f"roost check: {note}", file=sys.stderr)
    if not allowed:
        args.files = [p for p in candidates if p.suffix == ".toml"]
    if args.files or not allowed:  # never load_directory: it would import Python files
        result = LoadResult([], [], list(args.files))
        for path in args.files:
            try:
                rules, errors = read_file(path)
            except OSError as exc:
                rules, errors = [], [RuleError(path, 0, f"cannot read: {exc}")]
            result.rules.extend(rules)
            result.errors.extend(errors)
    else:
        result = load_directory(rules_dir)
    checked_names = _against_home(result, settings, tags=args.config is not None)
    ordered = sorted(result.errors, key=lambda e: (str(e.path), e.line))
    if args.json:
        rows = [{"file": str(e.path), "line": e.line, "message": e.message} for e in ordered]
        report = {"rules": len(result.rules), "files": len(result.files), "errors": rows}
        print(json.dumps({**report, "names_checked": checked_names}))
        return 1 if result.errors else 0
    for error in ordered:
        print(error, file=sys.stderr)
    print(
        f"{len(result.rules)} rule(s) in {len(result.files)} file(s); {len(result.errors)} error(s)"
    )
    if not checked_names:
        print("(no stored home: device, room and structure names were not checked)")
    return 1 if result.errors else 0


def _all_files(rules_dir: Path) -> list[Path]:
    from roost.engine.loader import rule_files

    return rule_files(rules_dir) if rules_dir.is_dir() else []


def _against_home(result: Any, settings: Any, tags: bool) -> bool:
    """Check the names the rules use against the last known home and the notification
    targets; False if no home is stored yet."""
    from roost.engine.loader import RuleError
    from roost.rules.check import Known, reference_problems, scheduled, stored_homes
    from roost.rules.sun import Sun

    homes = stored_homes(settings.daemon.state_dir)
    # Without any target there is nothing to route to: `notify-test` says so, not check.
    targets = settings.notify.targets if tags else []
    tagged = {t for target in targets for t in target.tags} if targets else None
    known = Known.of(homes, tagged)
    placed = tags and (settings.location.latitude is not None or settings.location.structures)
    for r in result.rules:
        for line, message in reference_problems(r.references, known, scheduled(r.triggers)):
            result.errors.append(RuleError(Path(r.path), line, f"rule {r.name!r}: {message}"))
        if tags and not placed and any(isinstance(t, Sun) for t in r.triggers):
            line = int(r.source.rsplit(":", 1)[-1]) if r.source[-1:].isdigit() else 0
            message = "a sun trigger needs the home's [location] latitude and longitude"
            result.errors.append(RuleError(Path(r.path), line, f"rule {r.name!r}: {message}"))
    return homes is not None


def _ask(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any] | None:
    from roost.cli.status import socket_path
    from roost.service.control import ControlError, request

    path = socket_path(args.config, args.socket)
    try:
        answer: dict[str, Any] = anyio.run(request, path, payload)
    except ControlError as exc:
        print(f"roost: {exc}", file=sys.stderr)
        return None
    return answer


def trace_command(args: argparse.Namespace) -> int:
    from roost.engine.traces import format_trace

    answer = _ask(args, {"command": "trace", "rule": args.rule, "limit": args.limit})
    if answer is None:
        return 1
    traces = answer.get("traces", [])
    for trace in traces:
        print(dumps(trace) if args.json else format_trace(terminal.clean(trace)) + "\n")
    if not traces and not args.json:
        print("no traces yet" + (f" for {args.rule!r}" if args.rule else ""))
        for line in answer.get("never", []):
            print(f"  {line}")
    elif not traces:
        print(dumps({"never": answer.get("never", [])}))
    return 0


def reload_command(args: argparse.Namespace) -> int:
    answer = _ask(args, {"command": "reload"})
    if answer is None:
        return 1
    if args.json:
        print(json.dumps(answer))
        return 1 if answer.get("errors") else 0
    for error in answer.get("errors", []):
        print(error, file=sys.stderr)
    print(f"{answer.get('rules')} rule(s) running; {len(answer.get('errors', []))} error(s)")
    return 1 if answer.get("errors") else 0


def replay_command(args: argparse.Namespace) -> int:
    from roost.engine.loader import RuleFileError
    from roost.host.log import configure_logging
    from roost.testing.replay import ReplayError, read_recording, replay

    configure_logging("error", "console")
    try:
        recording = read_recording(args.events)
        sim = anyio.run(replay, recording, args.rules, io.StringIO() if args.json else sys.stdout)
    except (ReplayError, RuleFileError, ValueError) as exc:
        print(f"roost replay: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(replay_json(sim)))
    return 0


def replay_json(sim: Any) -> dict[str, Any]:
    """What a replay would have done, for machines (`roost replay --json`)."""
    from roost.engine.traces import Result

    commands = [
        {
            "at": c.at.isoformat() if c.at else None,
            "rule": c.rule,
            "command": str(c),
            "outcome": str(c.outcome),
            "reason": c.reason,
        }
        for c in sim.commands
    ]
    notifications = [
        {
            "at": n.created_at.isoformat(),
            "rule": n.rule,
            "title": n.title,
            "tags": list(n.tags),
            "priority": str(n.priority),
        }
        for n in sim.notifications
    ]
    skipped = sum(1 for t in sim.traces() if t.result is Result.SKIPPED)
    return {"commands": commands, "notifications": notifications, "skipped": skipped}
