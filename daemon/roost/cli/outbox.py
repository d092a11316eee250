"""`roost outbox`: what is waiting to be sent, what was given up, and retrying one.

When the daemon answers on its control socket, it asks the daemon (which owns the
database file: under systemd it belongs to the service's dynamic user, and a root shell
opening it could leave root-owned `-wal`/`-shm` files behind). When no daemon answers, it
reads the store the settings name directly (the SQLite file, or the fleet's PostgreSQL
database), so it also works while roost is stopped; the next start picks up a retried
entry.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from roost.cli import terminal
from roost.core.codec import dumps
from roost.service.introspect import outbox_row
from roost.store.sqlite import FILE_NAME, OutboxEntry, StoreError

if TYPE_CHECKING:
    from roost.config.settings import Settings
    from roost.store.interface import StateStore


def _show(entries: list[OutboxEntry], as_json: bool, out: TextIO) -> None:
    show_rows([outbox_row(e) for e in entries], as_json, out)


def show_rows(rows: list[dict[str, Any]], as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(dumps(rows, indent=2))
        out.write("\n")
        return
    if not rows:
        print("the outbox is empty: nothing pending, nothing given up", file=out)
        return
    for r in terminal.clean(rows):
        when = "next try " + str(r["next_attempt_at"])[:19].replace("T", " ") + " UTC"
        if r["state"] == "dead":
            when = "given up"
        print(f"{r['state']:<8} {r['title']!r}  ({r['attempts']} attempts, {when})", file=out)
        print(f"         key {r['key']}  rule {r['rule']}  {r['last_error']}", file=out)


def main(settings: Settings, retry: str | None, as_json: bool, out: TextIO | None = None) -> int:
    """Read (or retry in) the store directly."""
    out = out or sys.stdout  # looked up now: tests (and callers) may have replaced it
    database = settings.daemon.state_dir / FILE_NAME
    if settings.store.url is None and not (database.is_file() or database.is_symlink()):
        # a look must not create one
        if retry is not None:
            print(f"no database at {database}: nothing to retry", file=sys.stderr)
            return 1
        show_rows([], as_json, out)
        return 0

    async def run() -> int:
        from roost.service.stores import open_store

        try:
            store = open_store(settings)
        except StoreError as exc:
            print(f"roost outbox: {exc}", file=sys.stderr)
            return 1
        try:
            return await _run(store, retry, as_json, out)
        except StoreError as exc:  # (PostgreSQL: connected on first use)
            print(f"roost outbox: {exc}", file=sys.stderr)
            return 1
        finally:
            await store.aclose()

    return anyio.run(run)


async def _run(store: StateStore, retry: str | None, as_json: bool, out: TextIO) -> int:
    if retry is not None:
        if not await store.outbox_retry(retry, datetime.now(UTC)):
            print(f"no pending or dead notification with key {retry!r}", file=sys.stderr)
            return 1
        print(f"{retry} will be sent again", file=out)
        return 0
    _show(await store.outbox_list(), as_json, out)
    return 0


def through_daemon(socket: Path, retry: str | None, as_json: bool, out: TextIO) -> int | None:
    """Ask the running daemon; None when it does not answer (then read the store)."""
    from roost.service.control import ControlError, request

    payload: dict[str, Any] = {"command": "outbox", "retry": retry}
    try:
        answer = anyio.run(request, socket, payload)
    except ControlError:
        return None
    if retry is not None:
        if not answer.get("retried"):
            print(f"no pending or dead notification with key {retry!r}", file=sys.stderr)
            return 1
        print(f"{retry} will be sent again", file=out)
        return 0
    show_rows(list(answer.get("entries", [])), as_json, out)
    return 0
