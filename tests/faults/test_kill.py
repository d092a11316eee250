"""kill -9 of the daemon at the worst moments: nothing is lost, nothing fires twice
except where the suite says it can (and then with the same dedupe key)."""

from __future__ import annotations

import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from roost.store.sqlite import FILE_NAME
from tests.faults.harness import TALLY, Bed, fault_bed, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

ALARM = "alarm-hallway"
CO_TITLE = "CO emergency in the Hallway"


async def crash_on_co(bed: Bed, kill_at: str) -> None:
    """Start the daemon armed to die at `kill_at`, raise CO, and see it die."""
    await bed.daemon.start(kill_at=kill_at)
    await bed.daemon.wait_connected(1)
    bed.home.set_co(ALARM, "emergency")
    code = await bed.daemon.wait_exit()
    assert code == -signal.SIGKILL
    TALLY.faults[f"kill -9 at {kill_at}"] += 1


async def restart_and_collect(bed: Bed, connections: int) -> None:
    await bed.daemon.start()
    await bed.daemon.wait_connected(connections)
    await wait_for(lambda: bed.titles()[CO_TITLE] >= 1)
    await anyio.sleep(1.0)  # a duplicate, if any, would arrive now


def record(bed: Bed, kill_point: str) -> None:
    count = bed.titles()[CO_TITLE]
    if count == 0:
        TALLY.notifications_lost += 1
    TALLY.duplicates[kill_point] += max(0, count - 1)


async def test_kill_after_the_outbox_commit_before_sending(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        await crash_on_co(bed, "outbox_committed")
        assert bed.titles()[CO_TITLE] == 0  # it died before sending
        await restart_and_collect(bed, connections=2)
        record(bed, "outbox_committed")
        assert bed.titles()[CO_TITLE] == 1


async def test_kill_while_in_flight_duplicates_only_with_the_same_key(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        await crash_on_co(bed, "notification_sent")
        assert bed.titles()[CO_TITLE] == 1  # delivered, but the outbox never heard of it
        await restart_and_collect(bed, connections=2)
        record(bed, "notification_sent")
        keys = {k for k, n in bed.keys().items() if n}
        assert len(keys) == 1, "a duplicate must carry the first delivery's dedupe key"


async def test_an_alarm_raised_while_the_daemon_was_down_is_caught_up(tmp_path: Path) -> None:
    async with fault_bed(tmp_path) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        await anyio.sleep(1.5)  # the last known state reaches the store
        assert bed.daemon.process is not None
        bed.daemon.process.kill()
        await bed.daemon.wait_exit()
        TALLY.faults["kill -9 while idle"] += 1
        bed.home.set_co(ALARM, "emergency")  # nobody is watching
        await restart_and_collect(bed, connections=2)
        record(bed, "idle")
        if bed.titles()[CO_TITLE] != 1:
            TALLY.events_lost += 1
        assert bed.titles()[CO_TITLE] == 1
        assert '"catch_up": true' in bed.daemon.log() or "resync found changes" in bed.daemon.log()


async def test_repeated_kills_during_an_alarm_storm_lose_nothing(tmp_path: Path) -> None:
    """Every CO step pushes one notification; the daemon is killed at every commit."""
    async with fault_bed(tmp_path) as bed:
        steps = ["warning", "ok", "emergency", "ok", "warning"]
        expected = {
            "CO warning in the Hallway": 2,
            CO_TITLE: 1,
            "CO cleared in the Hallway": 2,
        }
        for round_number, step in enumerate(steps, start=1):
            await bed.daemon.start(kill_at="outbox_committed")
            await bed.daemon.wait_connected(round_number)
            # The last round's push goes out after this start; the next kill must not land
            # between its send and its record (that is the `notification_sent` kill point,
            # whose duplicate is by design): on a loaded machine the delivery can take longer
            # than the start-up, so wait until the outbox records it.
            if round_number > 1:
                earlier = round_number - 1
                await wait_for(lambda n=earlier: _delivered(bed.state_dir) >= n)
            bed.home.set_co(ALARM, step)
            assert await bed.daemon.wait_exit() == -signal.SIGKILL
            TALLY.faults["kill -9 at outbox_committed (storm)"] += 1
        await bed.daemon.start()
        await bed.daemon.wait_connected(len(steps) + 1)
        await wait_for(lambda: sum(bed.titles()[t] for t in expected) >= sum(expected.values()))
        await anyio.sleep(1.0)
        for title, count in expected.items():
            got = bed.titles()[title]
            TALLY.notifications_lost += max(0, count - got)
            TALLY.duplicates["outbox_committed (storm)"] += max(0, got - count)
            assert got == count, (title, got)


def _delivered(state_dir: Path) -> int:
    """Notifications the outbox has recorded as delivered (read beside the daemon)."""
    uri = f"file:{state_dir / FILE_NAME}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        row = conn.execute("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'").fetchone()
    return int(row[0])


HOLD_RULE = """
[[rule]]
name = "away for a while"
on = { event = "presence", to = "away", hold = "2s" }

[[rule.do]]
action = "notify"
title = "Everyone has been out for a while"
"""


async def test_a_hold_timer_pending_at_a_kill_fires_once_after_restart(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "hold.toml").write_text(HOLD_RULE)
    async with fault_bed(tmp_path, rules=rules) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_away("structure-home", True)
        await anyio.sleep(1.5)  # the hold is pending, and the new state saved
        assert bed.daemon.process is not None
        bed.daemon.process.kill()
        await bed.daemon.wait_exit()
        TALLY.faults["kill -9 with a hold timer pending"] += 1
        await anyio.sleep(1.5)  # the timer falls due while the daemon is down
        await bed.daemon.start()
        await bed.daemon.wait_connected(2)
        title = "Everyone has been out for a while"
        await wait_for(lambda: bed.titles()[title] >= 1)
        await anyio.sleep(2.5)  # a second firing, if any, would come now
        count = bed.titles()[title]
        TALLY.notifications_lost += int(count == 0)
        TALLY.duplicates["hold timer pending"] += max(0, count - 1)
        assert count == 1


DELAY_RULE = """
[[rule]]
name = "co twice"
on = { event = "co", to = "emergency" }

[[rule.do]]
action = "notify"
title = "CO: first warning"

[[rule.do]]
action = "delay"
for = "2s"

[[rule.do]]
action = "notify"
title = "CO: still there after the delay"
"""


async def test_a_delay_pending_at_a_kill_resumes_after_restart(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "delay.toml").write_text(DELAY_RULE)
    async with fault_bed(tmp_path, rules=rules) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_co(ALARM, "emergency")
        await wait_for(lambda: bed.titles()["CO: first warning"] == 1)
        await anyio.sleep(0.3)  # inside the delay
        assert bed.daemon.process is not None
        bed.daemon.process.kill()
        await bed.daemon.wait_exit()
        TALLY.faults["kill -9 during a rule's delay"] += 1
        await anyio.sleep(2.0)  # the rest of the run falls due while the daemon is down
        await bed.daemon.start()
        await bed.daemon.wait_connected(2)
        second = "CO: still there after the delay"
        await wait_for(lambda: bed.titles()[second] >= 1)
        await anyio.sleep(2.5)  # a repeat, if any, would come now
        counts = bed.titles()
        TALLY.notifications_lost += int(counts[second] == 0)
        TALLY.duplicates["delay pending"] += max(0, counts[second] - 1)
        TALLY.duplicates["delay pending"] += max(0, counts["CO: first warning"] - 1)
        assert (counts["CO: first warning"], counts[second]) == (1, 1)
