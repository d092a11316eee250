"""A fleet on PostgreSQL: accounts per worker, failover time, database writes per second.

    .venv/bin/python bench/fleet.py                        # 3 workers x 1,000 accounts
        [--accounts 1000] [--workers 3] [--rate 1000] [--seconds 10] [--kills 3]

Starts a throwaway PostgreSQL (initdb + pg_ctl, as the tests do; Debian's `postgresql`
package must be installed), one simulator serving N WWN homes (in this process), and W
`roost run` workers in cluster mode. Then:

1. accounts per worker: once every account streams, the groups each worker owns;
2. PostgreSQL writes at `--rate` changes a second for `--seconds` s (humidity of home
   n mod N): committed transactions and rows written per second, from pg_stat_database,
   beside the change rate achieved and the journal rows added (counted directly);
3. failover, `--kills` times: SIGKILL the worker owning most, time until every one of its
   accounts streams again from another worker; the killed worker is restarted and the
   fleet rebalances before the next kill. Median and worst.

Prints one JSON line, with the machine's load average (other work on the machine slows
every figure here).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from tests.cluster.fleet import Homes, start_worker, stop, worker_config  # noqa: E402
from tests.pgserver import PgServer, binaries  # noqa: E402

from roost.simulator import http  # noqa: E402
from roost.simulator.sink import serve_sink  # noqa: E402
from roost.store.postgres import PgStore  # noqa: E402


def owners(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT owner, count(*) FROM cluster_groups c JOIN pg_stat_activity a"
            " ON a.application_name = 'roost-lock:' || c.owner GROUP BY owner"
        ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def groups_of(url: str, worker: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT grp FROM cluster_groups WHERE owner = %s", (worker,))
        return [str(r[0]) for r in rows.fetchall()]


# PostgreSQL 15's backends report their counts to pg_stat_database within ~10 s when idle
STATS_FLUSH_S = 11.0


def journal_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM journal").fetchone()
    return int(row[0]) if row else 0


def db_counters(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted"
            " FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def resumed(homes: Homes, accounts: list[int], since: float) -> bool:
    """Every one of these accounts opened a stream again since then."""
    return all(any(t > since for t in homes.opened.get(i, [])) for i in accounts)


async def until(condition: Any, within: float) -> float:
    start = anyio.current_time()
    with anyio.fail_after(within):
        while not condition():
            await anyio.sleep(0.05)
    return anyio.current_time() - start


async def changes(homes: Homes, rate: float, seconds: float) -> int:
    start = time.monotonic()
    n_homes = len(homes.sims)
    made = 0
    for n in range(int(rate * seconds)):
        await anyio.sleep(max(0.0, start + n / rate - time.monotonic()))
        h = homes.sims[n % n_homes].home
        h.thermostats[f"t-{n % n_homes}"].humidity = 30 + n % 40
        h.changed()
        made += 1
    return made


async def main(args: argparse.Namespace) -> dict[str, Any]:
    bindir = binaries()
    if bindir is None:
        sys.exit("PostgreSQL is not installed: apt-get install postgresql")
    server_pg = PgServer(bindir)
    server_pg.start()
    directory = Path(tempfile.mkdtemp(prefix="roost-fleet-bench-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        url = server_pg.new_database()
        PgStore(url)
        homes = Homes(args.accounts)
        async with serve_sink() as sink, http.serve(homes.handle) as server:
            for sim in homes.sims:
                sim._server = server
            configs = {}
            for i in range(args.workers):
                name = f"w{i + 1}"
                configs[name] = worker_config(
                    directory, name, server.url, url, sink.url, args.accounts
                )
                procs[name] = start_worker(configs[name], directory / f"{name}.log")
            connect_s = await until(lambda: homes.connected() >= args.accounts, 600)
            await anyio.sleep(2)
            per_worker = owners(url)

            await anyio.sleep(STATS_FLUSH_S)
            before, journal_before = db_counters(url), journal_rows(url)
            made = await changes(homes, args.rate, args.seconds)
            await anyio.sleep(1.5)  # the last second's saves and journal batches
            journal_after = journal_rows(url)
            await anyio.sleep(STATS_FLUSH_S)  # every backend has reported its counts
            after = db_counters(url)
            window = args.seconds + 1.5  # what the writes were spread over
            writes = {
                "changes_per_s": round(made / args.seconds, 1),
                "transactions_per_s": round((after[0] - before[0]) / window, 1),
                "rows_written_per_s": round((after[1] - before[1]) / window, 1),
                "journal_rows_per_s": round((journal_after - journal_before) / window, 1),
            }

            failovers: list[float] = []
            for _ in range(args.kills):
                counts = owners(url)
                victim = max(counts, key=lambda n: counts[n])
                orphaned = [int(g[1:]) for g in groups_of(url, victim)]
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait(10)
                killed = anyio.current_time()

                await until(lambda: resumed(homes, orphaned, killed), 120)  # noqa: B023
                failovers.append(round(anyio.current_time() - killed, 2))
                procs[victim] = start_worker(configs[victim], directory / f"{victim}.log")
                share = -(-args.accounts // args.workers)
                await until(lambda: max(owners(url).values() or [0]) <= share, 300)  # noqa: B023
                await until(lambda: len(owners(url)) == args.workers, 300)
    finally:
        for proc in procs.values():
            stop(proc)
        server_pg.stop()
    return {
        "accounts": args.accounts,
        "workers": args.workers,
        "connect_s": round(connect_s, 1),
        "accounts_per_worker": per_worker,
        "writes_at_rate": {"offered_changes_per_s": args.rate, **writes},
        "failover_s": {
            "runs": failovers,
            "median": statistics.median(failovers) if failovers else None,
            "worst": max(failovers) if failovers else None,
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kills", type=int, default=3)
    print(json.dumps(anyio.run(main, parser.parse_args())))
