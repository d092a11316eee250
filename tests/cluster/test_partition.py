"""A partition through `roost run`: two worker processes share one PostgreSQL; one of them
reaches it through a TCP proxy, which is then cut (the server sees that worker's sessions
end; the worker sees its connections go silent) while its vendor streams stay up. Checked at
the simulator: the cut worker sends nothing once its lock timeout has passed, it stops its
streams, and the other worker takes its accounts over, each written by one worker per
ownership epoch."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import psycopg
import pytest

from roost.simulator import http
from roost.simulator.sink import serve_sink
from roost.store.postgres import PgStore
from tests.cluster.fleet import (
    Homes,
    double_writers,
    stale_writes,
    start_worker,
    stop,
    worker_config,
)
from tests.cluster.proxy import tcp_proxy

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ACCOUNTS = 20
LOCK_TIMEOUT_S = 2.0
# Each temperature reading makes a setpoint write (as far as the vendor's write limits let).
RULE = """
from roost import rule, when


@rule(on=when("temperature"))
async def follow(event, home):
    for thermostat in home.thermostats(structure=event.structure):
        await thermostat.set_heat(event.new)
"""


def writes_by(homes: Homes, worker: str, after: float = 0.0) -> dict[int, list[float]]:
    """Home -> when the worker's writes arrived there (time.monotonic)."""
    found: dict[int, list[float]] = {}
    for i, sim in enumerate(homes.sims):
        times = [r.at for r in sim.requests if r.worker == worker and r.at > after]
        if times:
            found[i] = times
    return found


def owned_by(pg_url: str, worker: str) -> set[int]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT grp FROM cluster_groups WHERE owner = %s", (worker,))
        return {int(str(r[0])[1:]) for r in rows.fetchall()}


async def test_a_worker_cut_from_the_database_stops_sending_within_the_lock_timeout(
    pg_url: str, tmp_path: Path
) -> None:
    PgStore(pg_url)  # migrated before the workers race to
    homes = Homes(ACCOUNTS, keepalive_s=1)
    port = urlsplit(pg_url).port
    procs: dict[str, subprocess.Popen[bytes]] = {}
    async with (
        serve_sink() as sink,
        http.serve(homes.handle) as server,
        tcp_proxy(int(str(port))) as proxy,
    ):
        for sim in homes.sims:
            sim._server = server
        through_proxy = pg_url.replace(f":{port}/", f":{proxy.port}/")
        for name, url in (("w1", through_proxy), ("w2", pg_url)):
            config = worker_config(
                tmp_path, name, server.url, url, sink.url, ACCOUNTS, RULE, LOCK_TIMEOUT_S
            )
            procs[name] = start_worker(config, tmp_path / f"{name}.log")
        try:
            with anyio.fail_after(180):
                while homes.connected() < ACCOUNTS:
                    await anyio.sleep(0.2)
            await anyio.sleep(2)  # first snapshots saved as the last known state
            async with anyio.create_task_group() as tg:
                tg.start_soon(readings, homes)
                with anyio.fail_after(60):  # both workers are sending
                    while not (writes_by(homes, "w1") and writes_by(homes, "w2")):
                        await anyio.sleep(0.2)
                cut_off = owned_by(pg_url, "w1")
                streams_before = {i: len(homes.opened.get(i, [])) for i in cut_off}
                proxy.partition()
                cut = time.monotonic()

                def ended(i: int) -> list[float]:
                    """When the streams open at the cut ended (as the simulator saw it)."""
                    return sorted(homes.closed.get(i, []))[: streams_before[i]]

                with anyio.fail_after(60):  # w1's streams end, w2 serves w1's homes
                    while not all(len(ended(i)) == streams_before[i] for i in cut_off):
                        await anyio.sleep(0.2)
                    while not cut_off <= set(writes_by(homes, "w2", after=cut)):
                        await anyio.sleep(0.2)
                stopped = max(t for i in cut_off for t in ended(i)) - cut
                await anyio.sleep(LOCK_TIMEOUT_S)  # a late write of w1 would show by now
                tg.cancel_scope.cancel()
        finally:
            await proxy.close()  # (w1 can then stop without waiting out its timeouts)
            for proc in procs.values():
                stop(proc)
    log = (tmp_path / "w1.log").read_text(errors="replace")
    assert cut_off
    assert set(writes_by(homes, "w1")) & cut_off, "w1 wrote nothing before the cut"
    late = writes_by(homes, "w1", after=cut + LOCK_TIMEOUT_S)
    assert late == {}, f"w1 still sent {late} after its lock timeout"
    assert "lock session lost: stopping every group" in log
    # w1 stopped serving its homes, not only writing: its streams ended (seen by the
    # simulator at its next keep-alive write, a second or two later)
    assert stopped < LOCK_TIMEOUT_S + 8, f"w1's streams ended {stopped:.1f} s after the cut"
    assert double_writers(homes.sims) == {}
    assert stale_writes(homes.sims) == {}


async def readings(homes: Homes) -> None:
    """A temperature reading a second in every home (alternating, so each one is a change)."""
    for n in range(10_000):
        for i, sim in enumerate(homes.sims):
            sim.home.set_ambient(f"t-{i}", 20.0 + n % 2)
            sim.home.changed()
        await anyio.sleep(1)
