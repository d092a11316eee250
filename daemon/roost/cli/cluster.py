"""`roost fleet` (one command to many accounts, and its per-account outcomes) and
`roost cluster` (the workers, who owns what, and the backlog), read from the PostgreSQL
store the settings name. Both work from any machine that reaches the database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import anyio

from roost.core.codec import dumps


def add_commands(sub: Any) -> None:
    fleet = sub.add_parser("fleet", help="send one command to many accounts of a fleet")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)
    send = fleet_sub.add_parser("send", help="one durable row per selected account")
    send.add_argument("--config", type=Path, help="the TOML settings file")
    send.add_argument(
        "--set",
        required=True,
        metavar="NAME=VALUE",
        help="heat=19.5, cool=24, mode=off, cool_delta=2 or heat_delta=-1 (every thermostat)",
    )
    send.add_argument("--account", action="append", default=[], help="this account (repeatable)")
    send.add_argument(
        "--structure", metavar="ATTR=VALUE", help="accounts whose home has a structure with it"
    )
    send.add_argument(
        "--tag", action="append", default=[], help="accounts with this tag (repeatable: all)"
    )
    send.add_argument(
        "--from",
        dest="starts",
        metavar="WHEN",
        help="start then (HH:MM today, local time, or ISO with offset); default now",
    )
    send.add_argument(
        "--until",
        dest="ends",
        metavar="WHEN",
        help="end then, restoring each setpoint (unless changed meanwhile); default: one-shot",
    )
    send.set_defaults(func=_send)
    show = fleet_sub.add_parser("status", help="per-account outcomes of a fleet command")
    show.add_argument("id", help="the fleet command's id (printed by `roost fleet send`)")
    show.add_argument("--config", type=Path, help="the TOML settings file")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_status)

    cluster = sub.add_parser("cluster", help="the fleet's workers, ownership and backlog")
    cluster.add_argument("--config", type=Path, help="the TOML settings file")
    cluster.add_argument("--json", action="store_true", help="machine-readable output")
    cluster.set_defaults(func=_cluster)


def _settings(path: Path | None) -> Any:
    from roost.config.load import load_settings
    from roost.config.settings import ConfigError

    try:
        settings = load_settings(path)
    except ConfigError as exc:
        sys.exit(str(exc))
    if settings.store.url is None:
        sys.exit("this needs a fleet: [store] url (PostgreSQL) in the settings")
    return settings


async def _connect(settings: Any) -> Any:
    import psycopg

    password = settings.store.password
    try:
        return await psycopg.AsyncConnection.connect(
            settings.store.url,
            password=password.get_secret_value() if password else None,
            autocommit=True,
            options="-c timezone=UTC",
        )
    except psycopg.Error as exc:
        sys.exit(f"cannot reach the PostgreSQL store: {exc}")


def _send(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from roost.cluster import fleet
    from roost.cluster.worker import account_groups

    settings = _settings(args.config)
    try:
        setting = fleet.parse_setting(args.set)
        window = fleet.parse_window(args.starts, args.ends, datetime.now(UTC))
        structure = None
        if args.structure:
            attribute, sep, value = args.structure.partition("=")
            if not sep:
                raise ValueError("--structure: ATTR=VALUE, e.g. name=Home 3")
            structure = (attribute, value)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    groups = {
        a: g
        for g, members in account_groups(
            [a.name for a in settings.accounts], settings.cluster.groups
        ).items()
        for a in members
    }
    tags = {a.name: a.tags for a in settings.accounts}
    selection = fleet.Selection(tuple(args.account), structure, tuple(args.tag))

    async def send() -> tuple[str, int]:
        async with await _connect(settings) as conn:
            return await fleet.create(conn, groups, selection, setting, window, tags)

    try:
        fleet_id, rows = anyio.run(send)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    when = f" from {window.starts.isoformat()}" if window.starts else ""
    when += f" until {window.ends.isoformat()}" if window.ends else ""
    print(f"fleet command {fleet_id}: {rows} account(s){when}; `roost fleet status {fleet_id}`")
    return 0


def _status(args: argparse.Namespace) -> int:
    from roost.cluster import fleet

    settings = _settings(args.config)

    async def read() -> dict[str, Any]:
        async with await _connect(settings) as conn:
            return await fleet.status(conn, args.id)

    try:
        report = anyio.run(read)
    except LookupError as exc:
        print(exc.args[0], file=sys.stderr)
        return 1
    if args.json:
        print(dumps(report, indent=2))
        return 0
    print(format_status(report))
    return 0


def format_status(report: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {state}" for state, n in sorted(report["counts"].items()))
    window = f" from {report['starts_at']}" + (
        f" until {report['ends_at']}" if report["ends_at"] else ""
    )
    lines = [f"{report['id']}: {report['setting']} to {report['selection']}{window}: {counts}"]
    if report["restores"]:
        restores = ", ".join(f"{n} {state}" for state, n in sorted(report["restores"].items()))
        lines.append(f"  restores: {restores}")
    for row in report["accounts"]:
        took = f"{row['took_s']:.1f} s" if row["took_s"] is not None else "-"
        line = f"  {row['account']:<20} {row['state']:<12} {took:>8}  {row['worker']:<16}"
        line += f" {row['detail']}"
        if row["restore"]:
            line += f"  | restore {row['restore']}: {row['restore_detail']}"
        lines.append(line)
    return "\n".join(lines)


CLUSTER_QUERIES = {
    "workers": (
        "SELECT substr(application_name, 12), backend_start, coalesce(host(client_addr), 'local')"
        " FROM pg_stat_activity WHERE application_name LIKE 'roost-lock:%%' ORDER BY 1"
    ),
    "owners": "SELECT owner, count(*), max(epoch), max(owned_at) FROM cluster_groups GROUP BY 1",
    "backlog": (
        "SELECT writer, count(*), extract(epoch FROM now() - min(created_at))"
        " FROM outbox WHERE state = 'pending' GROUP BY 1"
    ),
    "fleet": "SELECT count(*) FROM fleet_targets WHERE state IN ('pending', 'sending')",
}


async def cluster_view(settings: Any) -> dict[str, Any]:
    async with await _connect(settings) as conn:
        found: dict[str, list[tuple[Any, ...]]] = {}
        for name, sql in CLUSTER_QUERIES.items():
            cursor = await conn.execute(sql.encode())
            found[name] = await cursor.fetchall()
    live = {str(r[0]) for r in found["workers"]}
    owners = {str(r[0]): r for r in found["owners"]}
    backlog = {str(r[0]): r for r in found["backlog"]}
    workers = []
    for name, started, host in found["workers"]:
        own, pending = owners.get(name), backlog.get(name)
        workers.append(
            {
                "worker": name,
                "host": host,
                "since": started.isoformat(),
                "groups": int(own[1]) if own else 0,
                "outbox_pending": int(pending[1]) if pending else 0,
                "lag_s": round(float(pending[2]), 1) if pending else 0.0,
            }
        )
    orphaned = sum(int(r[1]) for name, r in owners.items() if name not in live)
    return {
        "workers": workers,
        "groups": sum(int(r[1]) for r in owners.values()),
        "groups_without_live_owner": orphaned,
        "fleet_rows_pending": int(found["fleet"][0][0]),
    }


def format_cluster(view: dict[str, Any]) -> str:
    lines = [
        f"fleet: {len(view['workers'])} worker(s), {view['groups']} group(s),"
        f" {view['groups_without_live_owner']} waiting for an owner,"
        f" {view['fleet_rows_pending']} fleet row(s) pending"
    ]
    for w in view["workers"]:
        lines.append(
            f"  {w['worker']:<20} {w['groups']:>6} groups  outbox {w['outbox_pending']}"
            f" pending (lag {w['lag_s']} s)  {w['host']}"
        )
    return "\n".join(lines)


def _cluster(args: argparse.Namespace) -> int:
    settings = _settings(args.config)
    view = anyio.run(cluster_view, settings)
    print(dumps(view, indent=2) if args.json else format_cluster(view))
    return 0
