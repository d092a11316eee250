"""The service commands of `roost`: status, events, notify-test, auth.

`status` and `events` ask the running daemon over its control socket. Finding the socket
needs only the `[daemon]` table of the settings file, not the whole configuration: an
administrator's shell has no `$CREDENTIALS_DIRECTORY`, so settings that name systemd
credentials could not be fully loaded there.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from roost.cli import terminal
from roost.core.codec import dumps

SERVICE_SOCKET = Path("/run/roost/control.sock")


def add_commands(sub: Any) -> None:
    status = sub.add_parser("status", help="accounts, rules, last event, outbox of the daemon")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    socket_options(status)
    status.set_defaults(func=status_command)

    events = sub.add_parser("events", help="the daemon's recent events, or live with --follow")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing live events")
    events.add_argument("--event", action="append", help="only this event name (repeatable)")
    events.add_argument("--device", help="only this device (id or name)")
    events.add_argument("--account", help="only this account")
    events.add_argument("-n", "--limit", type=int, default=20, help="recent events (default 20)")
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    socket_options(events)
    events.set_defaults(func=events_command)

    test = sub.add_parser("notify-test", help="send a test push through each apprise URL")
    test.add_argument("tag", nargs="?", help="only the targets a notification with TAG reaches")
    test.add_argument("--json", action="store_true", help="machine-readable output")
    socket_options(test)
    test.set_defaults(func=notify_test_command)

    from roost.cli.auth import add_command

    add_command(sub)


def socket_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="the TOML settings file")
    parser.add_argument("--socket", type=Path, help="the control socket (default: from settings)")


def socket_path(config: Path | None, explicit: Path | None = None) -> Path:
    """Where the daemon listens: --socket; else `daemon.control_socket` (environment or the
    settings file, as `configpath.resolve_config` found it); else the runtime directory
    (/run/roost under systemd); else `control.sock` in the state directory."""
    if explicit is not None:
        return explicit
    daemon: dict[str, Any] = {}
    if config is not None:
        try:
            daemon = dict(tomllib.loads(config.read_text(encoding="utf-8")).get("daemon", {}))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            daemon = {}
    configured = os.environ.get("ROOST_DAEMON__CONTROL_SOCKET") or daemon.get("control_socket")
    if configured:
        return Path(str(configured))
    runtime = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if runtime:
        return Path(runtime) / "control.sock"
    if SERVICE_SOCKET.exists():
        return SERVICE_SOCKET
    state = os.environ.get("ROOST_DAEMON__STATE_DIR") or daemon.get("state_dir")
    if not state:
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0] or "state"
    return Path(str(state)) / "control.sock"


def ask(args: argparse.Namespace, payload: dict[str, Any]) -> dict[str, Any] | None:
    from roost.service.control import ControlError, request

    path = socket_path(args.config, args.socket)
    try:
        answer: dict[str, Any] = anyio.run(request, path, payload)
    except ControlError as exc:
        print(
            terminal.line(f"roost: {exc} (is the daemon running? `systemctl status roost`)"),
            file=sys.stderr,
        )
        return None
    return answer


# ---- status -------------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def format_status(s: dict[str, Any]) -> str:
    uptime = float(s["uptime_s"])
    lines = [
        f"roost {s['version']} (pid {s['pid']}), up {_duration(uptime)}"
        + (", DRY RUN: commands are not sent" if s.get("dry_run") else ""),
        "accounts:",
    ]
    for a in s["accounts"]:
        detail = f" ({a['detail']})" if a["detail"] else ""
        lag = f", lag {a['lag_s']:.1f}s" if a.get("lag_s") is not None else ""
        odd = a.get("unreadable_fields_total", 0), a.get("payloads_skipped", 0)
        payload = f", {odd[0]} unreadable fields, {odd[1]} payloads skipped" if any(odd) else ""
        lines.append(
            f"  {a['name']:<14} {a['provider']:<9} {a['state']}{detail}; "
            f"{a['devices']} devices, last event {_age(a['last_event_age_s'])}, "
            f"{a['reconnects']} reconnects{lag}{payload}"
        )
    if not s["accounts"]:
        lines.append("  (none configured)")
    rules = s["rules"]
    lines.append(f"rules: {len(rules)} loaded" + (f": {', '.join(rules)}" if rules else ""))
    lines.append(f"last event: {_age(s['last_event_age_s'])}; {s['events_seen']} events seen")
    lines.append(f"commands in flight: {s['commands_in_flight']}")
    box = s["outbox"]
    dead = " (see `roost outbox`)" if box.get("dead") else ""
    lines.append(f"outbox: {box.get('pending', 0)} pending, {box.get('dead', 0)} dead{dead}")
    if s.get("bus_dropped"):
        dropped = ", ".join(f"{k}: {v}" for k, v in s["bus_dropped"].items())
        lines.append(f"events dropped for slow viewers: {dropped}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def status_command(args: argparse.Namespace) -> int:
    answer = ask(args, {"command": "status"})
    if answer is None:
        return 1
    cluster = _cluster_view(args)  # a fleet worker: the workers, ownership and backlog too
    if cluster is not None:
        answer["cluster"] = cluster
    print(dumps(answer, indent=2) if args.json else format_status(terminal.clean(answer)))
    if cluster is not None and not args.json:
        from roost.cli.cluster import format_cluster

        print(format_cluster(cluster))
    return 0


def _cluster_view(args: argparse.Namespace) -> dict[str, Any] | None:
    from roost.config.load import load_settings
    from roost.config.settings import ConfigError

    try:
        settings = load_settings(args.config)
    except ConfigError:
        return None
    if not settings.cluster.enabled:
        return None
    import anyio

    from roost.cli.cluster import cluster_view

    view: dict[str, Any] = anyio.run(cluster_view, settings)
    return view


# ---- events -------------------------------------------------------------------------

_QUIET = frozenset({"event", "id", "at", "account", "structure", "device", "context"})


def format_event(data: dict[str, Any]) -> str:
    if data.get("event") == "_dropped":
        return f"… {data.get('count')} event(s) dropped: this viewer fell behind"
    at = str(data.get("at", ""))
    try:
        when = datetime.fromisoformat(at).astimezone().strftime("%H:%M:%S")
    except ValueError:
        when = at[:8]
    where = data.get("device") or data.get("structure") or ""
    fields = " ".join(
        f"{k}={round(v, 3) if isinstance(v, float) else v}"
        for k, v in data.items()
        if k not in _QUIET and v not in (None, "", [], {})
    )
    catch_up = " (catch-up)" if (data.get("context") or {}).get("catch_up") else ""
    return f"{when} {data.get('account', '')}/{where} {data.get('event')}: {fields}{catch_up}"


def events_command(args: argparse.Namespace) -> int:
    payload = {
        "command": "events",
        "follow": args.follow,
        "event": args.event,
        "device": args.device,
        "account": args.account,
        "limit": args.limit,
    }
    if not args.follow:
        answer = ask(args, payload)
        if answer is None:
            return 1
        for data in answer.get("events", []):
            print(dumps(data) if args.json else format_event(terminal.clean(data)))
        return 0
    try:
        return anyio.run(_follow, args, payload)
    except KeyboardInterrupt:
        return 0


async def _follow(args: argparse.Namespace, payload: dict[str, Any]) -> int:
    from roost.service.control import ControlError, follow

    path = socket_path(args.config, args.socket)
    try:
        async for data in follow(path, payload):
            if data.get("following"):
                print("following live events (Ctrl-C to stop)", file=sys.stderr, flush=True)
                continue
            print(dumps(data) if args.json else format_event(terminal.clean(data)), flush=True)
    except ControlError as exc:
        print(terminal.line(f"roost: {exc}"), file=sys.stderr)
        return 1
    print("roost: the daemon closed the stream", file=sys.stderr)
    return 0


# ---- notify-test --------------------------------------------------------------------


def notify_test_command(args: argparse.Namespace) -> int:
    from roost.service.control import ControlError, request
    from roost.service.notify_test import format_results

    path = socket_path(args.config, args.socket)
    payload = {"command": "notify-test", "tag": args.tag}
    answer: dict[str, Any] | None = None
    if path.exists():
        try:
            answer = anyio.run(request, path, payload)
        except ControlError as exc:
            print(f"roost: the daemon did not answer ({exc}); sending from here", file=sys.stderr)
    if answer is None:
        answer = _send_here(args)
        if answer is None:
            return 1
    rows = list(answer.get("results", []))
    if args.json:
        print(dumps(answer, indent=2))
    else:
        print(terminal.line(format_results(rows, args.tag)))
    return 0 if rows and all(r["ok"] for r in rows) else 1


def _send_here(args: argparse.Namespace) -> dict[str, Any] | None:
    from roost.config.load import load_settings
    from roost.config.settings import ConfigError
    from roost.notify.notifier import restrict_schemes
    from roost.service.notify_test import send_test, targets

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    restrict_schemes(settings.notify.allowed_schemes)
    results = anyio.run(send_test, targets(settings), args.tag)
    return {"results": [r.to_json() for r in results], "sent_by": "cli"}
