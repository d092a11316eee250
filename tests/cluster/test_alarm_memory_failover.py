"""A smoke/CO alarm roost pushed itself (no rule reacts to it) in a fleet: the worker that
pushed it is killed with SIGKILL while the alarm sounds, another worker takes the account
over, and the alarm clears there. The new owner pushes roost's "cleared" too: the alarms
roost pushed are read from the shared store for each account a worker gains, not only at
its start (the survivor here started before the alarm was pushed)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import anyio
import psycopg
import pytest

from roost.simulator import http
from roost.simulator.sink import serve_sink
from roost.store.postgres import PgStore
from tests.cluster.fleet import Homes, start_worker, stop, worker_config

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCOUNTS = 4
MOTION_ONLY = """
from roost import rule, when


@rule(on=when("motion"))
async def motion(event, home):
    await home.notify("motion", "seen")
"""


def owner(pg_url: str, group: str) -> str | None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT owner FROM cluster_groups WHERE grp = %s", (group,))
        found = row.fetchone()
    return str(found[0]) if found is not None and found[0] else None


def saved_with_warning(pg_url: str) -> bool:
    """Whether h0's last known state, as saved in the store, has the CO warning."""
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT snapshot FROM home_state WHERE account = 'h0'").fetchone()
    return row is not None and '"warning"' in str(row[0])


def kept(pg_url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT account, device, alarm FROM alarms_pushed").fetchall()
    return [(str(a), str(d), str(k)) for a, d, k in rows]


async def test_the_new_owner_pushes_the_clearing_of_an_alarm_the_dead_owner_pushed(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)  # migrated before the workers race to
    homes = Homes(ACCOUNTS)
    async with serve_sink() as sink, http.serve(homes.handle) as server:
        for sim in homes.sims:
            sim._server = server
        procs: dict[str, subprocess.Popen[bytes]] = {}
        for name in ("w1", "w2"):
            config = worker_config(
                tmp_path, name, server.url, pg_url, sink.url, ACCOUNTS, rule=MOTION_ONLY
            )
            procs[name] = start_worker(config, tmp_path / f"{name}.log")
        try:
            with anyio.fail_after(60):
                while homes.connected() < ACCOUNTS or owner(pg_url, "h0") is None:
                    await anyio.sleep(0.1)
            await anyio.sleep(1)  # the first snapshot saved as the last known state
            victim = owner(pg_url, "h0")
            assert victim in procs
            h0 = homes.sims[0].home
            h0.set_co("a-0", "warning")
            h0.changed()

            def titles() -> list[str]:
                return [str(p["title"]) for p in sink.received]

            with anyio.fail_after(15):
                while "CO warning at alarm 'a-0'" not in titles() or not kept(pg_url):
                    await anyio.sleep(0.1)
            assert kept(pg_url) == [("h0", "a-0", "co")]
            # the warning is in the last known state: the new owner sees no change to it
            with anyio.fail_after(15):
                while not saved_with_warning(pg_url):
                    await anyio.sleep(0.1)
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(10)
            killed = anyio.current_time()
            with anyio.fail_after(30):  # the survivor streams h0 again
                while not any(t > killed for t in homes.opened.get(0, [])):
                    await anyio.sleep(0.1)
            await anyio.sleep(1)
            h0.set_co("a-0", "ok")
            h0.changed()
            with anyio.fail_after(15):
                while "CO cleared at alarm 'a-0'" not in titles():
                    await anyio.sleep(0.1)
            with anyio.fail_after(5):  # and forgets it
                while kept(pg_url):
                    await anyio.sleep(0.1)
            await anyio.sleep(1)
            assert titles().count("CO cleared at alarm 'a-0'") == 1, titles()
        finally:
            for proc in procs.values():
                stop(proc)
