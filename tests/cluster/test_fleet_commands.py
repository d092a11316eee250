"""`roost fleet send` to every account of a 2-worker fleet: one durable row per account,
each executed by its account's owner through the dispatcher, one outcome each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from roost.simulator import http
from roost.simulator.sink import serve_sink
from roost.store_pg import PgStore
from tests.cluster.fleet import Homes, start_worker, stop, worker_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCOUNTS = int(os.environ.get("ROOST_TEST_FLEET_ACCOUNTS", "300"))


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    return subprocess.run(
        [sys.executable, "-m", "roost", *args], capture_output=True, text=True, env=env, timeout=60
    )


async def test_a_fleet_command_reaches_every_account_once_with_one_outcome_each(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)
    homes = Homes(ACCOUNTS)
    async with serve_sink() as sink, http.serve(homes.handle) as server:
        for sim in homes.sims:
            sim._server = server
        configs = [
            worker_config(tmp_path, name, server.url, pg_url, sink.url, ACCOUNTS)
            for name in ("w1", "w2")
        ]
        procs = [start_worker(c, tmp_path / f"{c.stem}.log") for c in configs]
        try:
            with anyio.fail_after(120):
                while homes.connected() < ACCOUNTS:
                    await anyio.sleep(0.2)
            await anyio.sleep(1.5)  # the last known homes are saved (structure selection)
            refused = await anyio.to_thread.run_sync(
                lambda: roost("fleet", "send", "--config", str(configs[0]), "--set", "heat=99")
            )
            assert refused.returncode == 0  # accepted as rows; the guards refuse each one
            sent = await anyio.to_thread.run_sync(
                lambda: roost("fleet", "send", "--config", str(configs[0]), "--set", "heat=18.5")
            )
            assert sent.returncode == 0, sent.stderr
            fleet_id = sent.stdout.split()[2].rstrip(":")
            report: dict[str, object] = {}
            with anyio.fail_after(120):
                while True:
                    shown = await anyio.to_thread.run_sync(
                        lambda: roost(
                            "fleet", "status", fleet_id, "--config", str(configs[1]), "--json"
                        )
                    )
                    assert shown.returncode == 0, shown.stderr
                    report = json.loads(shown.stdout)
                    if "pending" not in report["counts"]:  # type: ignore[operator]
                        break
                    await anyio.sleep(0.5)
            with anyio.fail_after(60):
                while sum(1 for s in homes.sims if s.writes) < ACCOUNTS:
                    await anyio.sleep(0.2)
            refused_id = refused.stdout.split()[2].rstrip(":")
            shown = await anyio.to_thread.run_sync(
                lambda: roost("fleet", "status", refused_id, "--config", str(configs[0]), "--json")
            )
            refused_report = json.loads(shown.stdout)
            cluster = await anyio.to_thread.run_sync(
                lambda: roost("cluster", "--config", str(configs[0]), "--json")
            )
        finally:
            for proc in procs:
                stop(proc)
    rows = report["accounts"]
    assert isinstance(rows, list)
    assert sorted(r["account"] for r in rows) == sorted(f"h{i}" for i in range(ACCOUNTS))
    assert {r["state"] for r in rows} <= {"queued", "dry_run"}, report["counts"]
    assert {r["worker"] for r in rows} == {"w1", "w2"}  # each account ran at its owner
    for sim in homes.sims:  # each home got the fleet's write, once; the refused one never
        assert [18.5 in body.values() for _, body in sim.writes] == [True], sim.writes
    assert refused_report["counts"] == {"refused": ACCOUNTS}
    view = json.loads(cluster.stdout)
    assert sorted(w["worker"] for w in view["workers"]) == ["w1", "w2"]
    assert view["groups"] == ACCOUNTS
