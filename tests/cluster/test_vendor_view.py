"""What the vendor sees of a fleet: each write names its worker and ownership epoch
(X-Roost-Worker / X-Roost-Epoch), and the failover test's checks on the simulator's record
(tests/cluster/fleet.py) catch an account served by two workers, shown here on writes made
on purpose by the real WWN provider to a real simulator."""

from __future__ import annotations

import dataclasses

import pytest

from roost.core.commands import Command, SetHeat
from tests.cluster.fleet import double_writers, stale_writes, writers_by_epoch
from tests.test_nest_wwn_provider import LIVING, command, running

pytestmark = pytest.mark.anyio


def as_writer(worker: str, epoch: int, heat: float) -> Command:
    return dataclasses.replace(command(LIVING, SetHeat(heat)), writer=(worker, epoch))


async def test_a_fleet_write_names_its_worker_and_epoch_at_the_vendor() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        assert (await r.provider.execute(as_writer("w1", 7, 20.0))).ok
        assert (await r.provider.execute(command(LIVING, SetHeat(20.5)))).ok  # no fleet
        assert [(q.worker, q.epoch) for q in r.sim.requests] == [("w1", 7), (None, None)]


async def test_two_workers_in_one_epoch_or_an_old_owner_after_a_new_one_are_caught() -> None:
    async with running() as r:
        await r.sink.wait_for(lambda: bool(r.sink.snapshots))
        for worker, epoch, heat in [("w1", 3, 20.0), ("w2", 4, 20.5), ("w2", 4, 21.0)]:
            assert (await r.provider.execute(as_writer(worker, epoch, heat))).ok
        # a handover: w1 in epoch 3, then w2 in epoch 4 — nothing wrong
        assert writers_by_epoch([r.sim]) == {0: {3: {"w1"}, 4: {"w2"}}}
        assert double_writers([r.sim]) == {}
        assert stale_writes([r.sim]) == {}
        # w1 still sending in epoch 4 (two workers, one epoch)…
        assert (await r.provider.execute(as_writer("w1", 4, 21.5))).ok
        assert double_writers([r.sim]) == {0: {4: {"w1", "w2"}}}
        # …and in its old epoch 3 after w2's epoch 4 (an old owner after the new one)
        assert (await r.provider.execute(as_writer("w1", 3, 22.0))).ok
        assert stale_writes([r.sim]) == {0: [3, 4, 4, 4, 3]}
        # a write naming no worker at all is an unknown writer
        assert (await r.provider.execute(command(LIVING, SetHeat(22.5)))).ok
        assert double_writers([r.sim])[0][None] == {"?"}
