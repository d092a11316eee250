"""Failover of a fleet: 3 worker processes x 1,000 accounts on a real PostgreSQL; one is
killed with SIGKILL mid-run. Every account is owned again within 10 s, no (account, epoch)
is ever written by two workers, and the dead worker's pending outbox rows and timers are
taken over by the new owners."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from roost.cluster.ownership import LOCK_APP, lock_key
from roost.store.postgres import PgStore

ACCOUNTS = 1000
WORKER = Path(__file__).with_name("worker.py")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    lines: list[tuple[float, str]] = field(default_factory=list)

    def drain(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append((time.monotonic(), line.strip()))

    def gained(self) -> set[str]:
        owned: set[str] = set()
        for _, line in self.lines:
            verb, _, rest = line.partition(" ")
            group = rest.split(" ")[0]
            if verb == "gain":
                owned.add(group)
            elif verb == "lose":
                owned.discard(group)
        return owned


def start(url: str, name: str) -> Proc:
    popen = subprocess.Popen(
        [sys.executable, str(WORKER), url, name, str(ACCOUNTS), "0.5"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    proc = Proc(name, popen)
    threading.Thread(target=proc.drain, daemon=True).start()
    return proc


def held_locks(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """How many of the accounts' locks the live workers' lock sessions hold."""
    keys = {lock_key(f"acct-{i:04d}") for i in range(ACCOUNTS)}
    rows = conn.execute(
        "SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE %s",
        (LOCK_APP + "%",),
    ).fetchall()
    held = {int(r[0]) - (1 << 64) if int(r[0]) >= 1 << 63 else int(r[0]) for r in rows}
    return len(keys & held)


def served_since(conn: psycopg.Connection[tuple[object, ...]], victim: str) -> int:
    row = conn.execute(
        "SELECT count(DISTINCT grp) FROM cluster_commands WHERE worker <> %s", (victim,)
    ).fetchone()
    return int(str(row[0])) if row else 0


def timer_owners(conn: psycopg.Connection[tuple[object, ...]]) -> dict[str, str]:
    rows = conn.execute("SELECT id, grp FROM timers").fetchall()
    return {f"acct-{str(r[0])[2:]}": str(r[1]) for r in rows}


def account_owners(conn: psycopg.Connection[tuple[object, ...]], first: int) -> dict[str, str]:
    rows = conn.execute(
        "SELECT grp, owner FROM cluster_groups WHERE grp = ANY(%s)",
        ([f"acct-{i:04d}" for i in range(first)],),
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def wait_for(condition: object, timeout: float) -> float:
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.mark.slow
def test_a_killed_workers_accounts_are_owned_again_within_10_s_with_nothing_doubled(
    pg_url: str,
) -> None:
    PgStore(pg_url)  # migrated
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # one pending hold for each of the first 30 accounts, left by a worker that is gone:
        # the owners of those accounts take them over, and again after the kill
        conn.cursor().executemany(
            "INSERT INTO timers (id, rule, kind, due_at, payload, grp)"
            " VALUES (%s, 'r', 'hold', now() + interval '1 hour', %s, 'gone')",
            [(f"t-{i:04d}", f'{{"event": {{"account": "acct-{i:04d}"}}}}') for i in range(30)],
        )
        procs = [start(pg_url, name) for name in ("w1", "w2", "w3")]
        try:
            wait_for(lambda: held_locks(conn) == ACCOUNTS, 60)
            wait_for(lambda: all(len(p.gained()) <= 334 for p in procs), 60)
            time.sleep(2)  # a few ticks of writes
            victim = max(procs, key=lambda p: len(p.gained()))
            orphaned = victim.gained()
            victim.popen.send_signal(signal.SIGKILL)
            victim.popen.wait(10)
            killed = time.monotonic()
            took = wait_for(lambda: held_locks(conn) == ACCOUNTS, 10)
            survivors = [p for p in procs if p is not victim]
            wait_for(lambda: orphaned <= set().union(*(p.gained() for p in survivors)), 10)
            retaken = max(t for p in survivors for t, line in p.lines if line.startswith("gain "))
            assert retaken - killed < 10, f"failover took {retaken - killed:.1f} s"
            # the survivors now serve every account, each in its own (new) epoch
            wait_for(lambda: served_since(conn, victim.name) == ACCOUNTS, 60)

            def left() -> int:
                row = conn.execute(
                    "SELECT count(*) FROM outbox WHERE state = 'pending' AND key LIKE %s",
                    (victim.name + "-%",),
                ).fetchone()
                return int(str(row[0])) if row else -1

            wait_for(lambda: left() == 0, 30)  # the dead worker's outbox rows were taken over
            # the timers of the dead worker's accounts moved to their new owners
            wait_for(lambda: timer_owners(conn) == account_owners(conn, 30), 30)
            assert victim.name not in set(timer_owners(conn).values())
            adopted = {
                line.split(" ")[2]
                for p in survivors
                for _, line in p.lines
                if line.startswith("timers ")
            }
            assert {f"t-{i[5:]}" for i in orphaned if int(i[5:]) < 30} <= adopted
        finally:
            for proc in procs:
                if proc.popen.poll() is None:
                    proc.popen.send_signal(signal.SIGTERM)
                    proc.popen.wait(10)
        assert took < 10
        doubled = conn.execute(
            "SELECT grp, epoch FROM cluster_commands GROUP BY grp, epoch"
            " HAVING count(DISTINCT worker) > 1"
        ).fetchall()
        assert doubled == []
