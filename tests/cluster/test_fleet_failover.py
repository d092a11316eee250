"""`roost run` as a fleet: 3 workers x N simulated WWN accounts on one PostgreSQL, 10 homes
raising CO alarms, one worker killed with SIGKILL mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio
import psycopg
import pytest

from roost.simulator import http
from roost.simulator.sink import serve_sink
from roost.store_pg import PgStore
from tests.cluster.fleet import Homes, dedupe_keys, start_worker, stop, worker_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCOUNTS = int(os.environ.get("ROOST_TEST_FLEET_ACCOUNTS", "300"))
ALARMED = 10
HOLD_S = 12.0  # an alarm stays raised longer than a failover may take (10 s)


async def test_a_killed_worker_s_accounts_resume_elsewhere_with_no_alarm_lost(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)  # migrated before the workers race to
    homes = Homes(ACCOUNTS)
    raised: dict[int, int] = dict.fromkeys(range(ALARMED), 0)
    async with serve_sink() as sink, http.serve(homes.handle) as server:
        for sim in homes.sims:
            sim._server = server
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("w1", "w2", "w3"):
            config = worker_config(tmp_path, name, server.url, pg_url, sink.url, ACCOUNTS)
            procs[name] = start_worker(config, tmp_path / f"{name}.log")
        try:
            with anyio.fail_after(120):
                while homes.connected() < ACCOUNTS:
                    await anyio.sleep(0.2)
            await anyio.sleep(2)  # first snapshots saved as the last known state

            async def alarm(j: int, start_s: float) -> None:
                await anyio.sleep(start_s)
                h = homes.sims[j].home
                h.set_co(f"a-{j}", "warning")
                h.changed()
                raised[j] += 1
                await anyio.sleep(HOLD_S)
                h.set_co(f"a-{j}", "ok")
                h.changed()

            async with anyio.create_task_group() as tg:
                for j in range(ALARMED):
                    tg.start_soon(alarm, j, j * 0.6)  # one raised every 0.6 s
                await anyio.sleep(3)
                victim = _owner(pg_url, "h0")  # h0's hold is pending there now
                orphaned = _groups_of(pg_url, victim)
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait(10)
                killed = anyio.current_time()

                def resumed() -> bool:
                    return all(
                        any(t > killed for t in homes.opened.get(int(g[1:]), [])) for g in orphaned
                    )

                with anyio.fail_after(30):
                    while not resumed():
                        await anyio.sleep(0.1)
                took = anyio.current_time() - killed
            with anyio.fail_after(30):
                while len({p["title"] for p in sink.received}) < 2 * ALARMED:
                    await anyio.sleep(0.2)
            await anyio.sleep(2)
        finally:
            for proc in procs.values():
                stop(proc)
    logs = "".join((tmp_path / f"{n}.log").read_text(errors="replace") for n in procs)
    assert orphaned
    assert "timers taken over" in logs
    assert took < 10, f"every account streamed again {took:.1f} s after the kill"
    titles = {p["title"] for p in sink.received}
    # no alarm lost, and every hold fired: those pending on the killed worker moved
    expected = {f"CO h{j}" for j in range(ALARMED)} | {f"CO held h{j}" for j in range(ALARMED)}
    assert titles == expected, logs[-3000:]
    doubled = {k: n for k, n in dedupe_keys(sink.received).items() if n > 1}
    assert doubled == {}, doubled  # (a retry of one delivery would carry the same key)
    with psycopg.connect(pg_url) as conn:
        two_writers = conn.execute(
            "SELECT grp, epoch FROM cluster_commands GROUP BY grp, epoch"
            " HAVING count(DISTINCT worker) > 1"
        ).fetchall()
        recorded = dict(
            conn.execute(
                "SELECT account, count(*) FROM cluster_commands GROUP BY account"
            ).fetchall()
        )
    assert two_writers == []
    # every write the vendor saw went through the fence (a recorded command)
    for i, writes in homes.writes().items():
        assert writes <= recorded.get(f"h{i}", 0), (i, writes, recorded)
    assert homes.writes(), "the alarms made no command at all"


def _owner(pg_url: str, group: str) -> str:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT owner FROM cluster_groups WHERE grp = %s", (group,))
        found = row.fetchone()
    assert found is not None
    return str(found[0])


def _groups_of(pg_url: str, worker: str) -> list[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT grp FROM cluster_groups WHERE owner = %s", (worker,))
        return [str(r[0]) for r in rows.fetchall()]
