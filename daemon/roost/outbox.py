"""`roost outbox`: what is waiting to be sent, what was given up, and retrying one.

It reads the store directly, so it works whether or not the daemon runs; a running
daemon picks up a retried entry within a few seconds.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import anyio

from roost.store import OutboxEntry, Store


def _row(entry: OutboxEntry) -> dict[str, object]:
    return {
        "key": entry.key,
        "state": entry.state,
        "title": entry.payload.get("title"),
        "rule": entry.payload.get("rule"),
        "attempts": entry.attempts,
        "created_at": entry.created_at.isoformat(),
        "next_attempt_at": entry.next_attempt_at.isoformat(),
        "last_error": entry.last_error,
    }


def _show(entries: list[OutboxEntry], as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump([_row(e) for e in entries], out, indent=2)
        out.write("\n")
        return
    if not entries:
        print("the outbox is empty: nothing pending, nothing given up", file=out)
        return
    for e in entries:
        when = "next try " + e.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        if e.state == "dead":
            when = "given up"
        print(f"{e.state:<8} {e.payload.get('title')!r}  ({e.attempts} attempts, {when})", file=out)
        print(f"         key {e.key}  rule {e.payload.get('rule')}  {e.last_error}", file=out)


def main(state_dir: Path, retry: str | None, as_json: bool, out: TextIO = sys.stdout) -> int:
    async def run() -> int:
        store = Store.open(state_dir)
        try:
            if retry is not None:
                if not await store.outbox_retry(retry, datetime.now(UTC)):
                    print(f"no pending or dead notification with key {retry!r}", file=sys.stderr)
                    return 1
                print(f"{retry} will be sent again", file=out)
                return 0
            _show(await store.outbox_list(), as_json, out)
            return 0
        finally:
            store.close()

    return anyio.run(run)
