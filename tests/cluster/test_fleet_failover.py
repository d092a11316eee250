"""`roost run` as a fleet: 3 workers x 1,000 simulated WWN accounts on one PostgreSQL, 10
homes raising CO alarms, one worker killed with SIGKILL mid-run; then a fleet command to
every account (one process start-up serves both checks: it is the slow part)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

from roost.simulator import http
from roost.simulator.sink import serve_sink
from roost.store.postgres import PgStore
from tests.cluster.fleet import (
    Homes,
    dedupe_keys,
    double_writers,
    stale_writes,
    start_worker,
    stop,
    worker_config,
    writers_by_epoch,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCOUNTS = int(os.environ.get("ROOST_TEST_FLEET_ACCOUNTS", "1000"))
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
            with anyio.fail_after(300):  # ~110 s for 3 x 1,000 at a load of 10 on 2 cores
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
            # a fleet command to every account, run by the survivors
            survivor = next(n for n in procs if n != victim)
            config = tmp_path / f"{survivor}.toml"
            report = await fleet_command(config, "heat=18.5")
            refused = await fleet_command(config, "heat=99")  # past the guards' maximum
            view = json.loads((await cli("cluster", "--config", str(config), "--json")).stdout)
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
        ungrouped = conn.execute("SELECT key FROM outbox WHERE grp = ''").fetchall()
        recorded = dict(
            conn.execute(
                "SELECT account, count(*) FROM cluster_commands GROUP BY account"
            ).fetchall()
        )
    assert two_writers == []
    assert ungrouped == []  # every notification was written under its group's epoch
    # every write the vendor saw went through the fence (a recorded command)
    for i, writes in homes.writes().items():
        assert writes <= recorded.get(f"h{i}", 0), (i, writes, recorded)
    assert homes.writes(), "the alarms made no command at all"
    # at the vendor: every write named its worker and ownership epoch; no home was written
    # by two workers within one epoch, nor by an old owner after its successor
    assert double_writers(homes.sims) == {}
    assert stale_writes(homes.sims) == {}
    seen = writers_by_epoch(homes.sims)
    writers = {w for epochs in seen.values() for ws in epochs.values() for w in ws}
    assert set(procs) - {victim} <= writers <= set(procs)  # (the survivors: the fleet command)
    # the fleet command: one row and one final outcome per account, each run by its owner:
    # confirmed by the device's echo, or (the alarmed homes' thermostats are off) the
    # vendor's refusal
    rows = report["accounts"]
    assert sorted(r["account"] for r in rows) == sorted(f"h{i}" for i in range(ACCOUNTS))
    assert {r["worker"] for r in rows} == set(procs) - {victim}
    assert confirmed(report) == set(range(ALARMED, ACCOUNTS)), report["counts"]
    assert report["counts"] == {"confirmed": ACCOUNTS - ALARMED, "failed": ALARMED}
    assert all(r["done_at"] and r["took_s"] is not None for r in rows)
    for i, sim in enumerate(homes.sims):
        fleet_writes = [body for _, body in sim.writes if 18.5 in body.values()]
        assert len(fleet_writes) == (1 if i in confirmed(report) else 0), (i, sim.writes)
        assert not [body for _, body in sim.writes if 99 in body.values()]
    assert refused["counts"] == {"refused": ACCOUNTS}
    assert all("device_range" in r["detail"] or "range" in r["detail"] for r in refused["accounts"])
    assert sorted(w["worker"] for w in view["workers"]) == sorted(set(procs) - {victim})
    assert view["groups_without_live_owner"] == 0


async def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    command = [sys.executable, "-m", "roost", *args]
    done = await anyio.to_thread.run_sync(
        lambda: subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    )
    assert done.returncode == 0, done.stderr
    return done


async def fleet_command(config: Path, setting: str) -> dict[str, Any]:
    """`roost fleet send`, then `roost fleet status` until every row has its final outcome."""
    sent = await cli("fleet", "send", "--config", str(config), "--set", setting)
    fleet_id = sent.stdout.split()[2].rstrip(":")
    with anyio.fail_after(120):
        while True:
            shown = await cli("fleet", "status", fleet_id, "--config", str(config), "--json")
            report: dict[str, Any] = json.loads(shown.stdout)
            if not {"pending", "sending"} & set(report["counts"]):
                return report
            await anyio.sleep(0.5)


def confirmed(report: dict[str, Any]) -> set[int]:
    return {int(r["account"][1:]) for r in report["accounts"] if r["state"] == "confirmed"}


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
