"""A smoke/CO alarm roost pushed itself (no rule reacts to it) gets roost's "cleared" push
even when roost restarts in between: the store keeps the alarms roost pushed until they
clear. Through a real `roost run` against the simulated Works with Nest cloud, killed with
SIGKILL or stopped with SIGTERM while the alarm sounds, the alarm clearing while it is down."""

from __future__ import annotations

import json
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from roost.simulator.home import SimSmokeCoAlarm
from roost.store.sqlite import FILE_NAME
from tests.faults.harness import Bed, fault_bed, wait_for

pytestmark = pytest.mark.anyio

ALARM = "alarm-hallway"
HOME = "structure-home"
BEDROOM = "alarm-bedroom"  # a second alarm (below: one the token does not see)
ROOST_OWN = "CO emergency at alarm 'alarm-hallway'"
ROOST_CLEARED = "CO cleared at alarm 'alarm-hallway'"
RULE_CLEARED = "CO cleared in the Hallway"

MOTION_ONLY = """
[[rule]]
name = "doorbell"
on = { event = "motion" }
do = [{ action = "notify", title = "motion" }]
"""

CLEARED_RULE = """
[[rule]]
name = "co cleared"
on = { event = "co", from = ["warning", "emergency"], to = "ok" }
do = [{ action = "notify", title = "CO cleared in the Hallway", tags = ["urgent"] }]
"""


def no_alarm_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "doorbell.toml").write_text(MOTION_ONLY)
    return rules


def kept(bed: Bed) -> list[tuple[str, str, str]]:
    """The alarms roost keeps as pushed by itself, read from its SQLite file."""
    with closing(sqlite3.connect(bed.state_dir / FILE_NAME)) as conn:
        rows = conn.execute("SELECT account, device, alarm FROM alarms_pushed").fetchall()
    return [(str(a), str(d), str(k)) for a, d, k in rows]


def delivered(bed: Bed) -> list[str]:
    """The titles roost's outbox has recorded as delivered (one sent but not yet recorded
    is sent again after a SIGKILL, with its dedupe key: at least once)."""
    with closing(sqlite3.connect(bed.state_dir / FILE_NAME)) as conn:
        rows = conn.execute(
            "SELECT json_extract(payload, '$.title') FROM outbox WHERE state = 'delivered'"
        ).fetchall()
    return sorted(str(title) for (title,) in rows)


async def alarm_pushed_by_roost(bed: Bed) -> None:
    await bed.daemon.start()
    await bed.daemon.wait_connected(1)
    bed.home.set_co(ALARM, "emergency")
    await wait_for(lambda: bed.titles()[ROOST_OWN] == 1, timeout_s=10)
    await wait_for(lambda: kept(bed) == [("home", ALARM, "co")], timeout_s=5)


async def test_a_clearing_while_roost_was_killed_is_pushed_once(tmp_path: Path) -> None:
    """Two alarms roost pushed itself, then SIGKILL: the hallway's clears while roost is
    down (one "cleared"), the bedroom's alarm is gone from the account by the restart (its
    clearing can never come: roost says it cannot tell, once, and forgets it)."""
    async with fault_bed(tmp_path, no_alarm_rules(tmp_path), keepalive_timeout_s=30) as bed:
        bed.home.add(SimSmokeCoAlarm(BEDROOM, "Bedroom", HOME, "Bedroom"))
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_co(ALARM, "emergency")
        bed.home.set_co(BEDROOM, "emergency")
        await wait_for(lambda: bed.titles()[ROOST_OWN] == 1, timeout_s=10)
        both = [("home", BEDROOM, "co"), ("home", ALARM, "co")]
        await wait_for(lambda: sorted(kept(bed)) == both, timeout_s=10)
        pushed = ["CO emergency at alarm 'alarm-bedroom'", ROOST_OWN]
        await wait_for(lambda: delivered(bed) == pushed, timeout_s=10)  # the kill comes after
        assert bed.daemon.process is not None
        bed.daemon.process.kill()
        assert await bed.daemon.wait_exit() == -signal.SIGKILL
        bed.home.set_co(ALARM, "ok")  # nobody is watching
        bed.home.remove(BEDROOM)
        await bed.daemon.start()
        await bed.daemon.wait_connected(2)
        gone = f"Alarm {BEDROOM!r} is gone from account 'home'"
        await wait_for(lambda: bed.titles()[ROOST_CLEARED] == bed.titles()[gone] == 1)
        await wait_for(lambda: kept(bed) == [], timeout_s=5)
        await anyio.sleep(0.5)
        assert bed.titles()[ROOST_CLEARED] == bed.titles()[gone] == 1, bed.titles()
        assert bed.titles()[ROOST_OWN] == 1, bed.titles()
        assert not any("cleared at alarm 'alarm-bedroom'" in t for t in bed.titles())


async def test_a_clearing_after_a_clean_restart_is_pushed_once(tmp_path: Path) -> None:
    """Stopped (SIGTERM) while the alarm sounds, started again, and the alarm clears
    while roost runs: the restored home has the alarm, the clearing is a live change."""
    async with fault_bed(tmp_path, no_alarm_rules(tmp_path), keepalive_timeout_s=30) as bed:
        await alarm_pushed_by_roost(bed)
        await bed.daemon.stop()
        await bed.daemon.start()
        await bed.daemon.wait_connected(2)
        assert kept(bed) == [("home", ALARM, "co")]  # still sounding: still kept
        bed.home.set_co(ALARM, "ok")
        await wait_for(lambda: bed.titles()[ROOST_CLEARED] == 1, timeout_s=10)
        await anyio.sleep(0.5)
        assert bed.titles()[ROOST_CLEARED] == 1, bed.titles()
        assert bed.titles()[ROOST_OWN] == 1, bed.titles()
        assert kept(bed) == []


async def test_a_rule_added_meanwhile_says_the_clearing_and_roost_stays_quiet(
    tmp_path: Path,
) -> None:
    rules = no_alarm_rules(tmp_path)
    async with fault_bed(tmp_path, rules, keepalive_timeout_s=30) as bed:
        await alarm_pushed_by_roost(bed)
        await bed.daemon.stop()
        (rules / "co_cleared.toml").write_text(CLEARED_RULE)
        bed.home.set_co(ALARM, "ok")
        await bed.daemon.start()
        await bed.daemon.wait_connected(2)
        await wait_for(lambda: bed.titles()[RULE_CLEARED] == 1, timeout_s=10)
        await wait_for(lambda: kept(bed) == [], timeout_s=5)
        await anyio.sleep(0.5)
        assert bed.titles()[ROOST_CLEARED] == 0, bed.titles()


def stored_co(bed: Bed, device: str) -> str | None:
    """The CO state of `device` in the home roost last saved to its SQLite file."""
    with closing(sqlite3.connect(bed.state_dir / FILE_NAME)) as conn:
        row = conn.execute("SELECT snapshot FROM home_state").fetchone()
    devices = json.loads(row[0])["devices"] if row else []
    return next((str(d.get("co")) for d in devices if d.get("id") == device), None)


async def test_a_structure_alarm_clearing_while_roost_was_killed_is_pushed(
    tmp_path: Path,
) -> None:
    """The WWN stand-in beside a visible Protect counts while the structure says more; after
    a restart it takes its last word from the restored home, so the structure clearing while
    roost was down is the README rule's "cleared", not a device that silently went away."""
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:  # the README's rules
        bed.home.add(SimSmokeCoAlarm(BEDROOM, "Bedroom", HOME, "Bedroom"))
        bed.cloud.hide_protect(BEDROOM)
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        bed.home.set_co(BEDROOM, "emergency")
        await wait_for(lambda: bed.titles()["CO emergency in the Home"] == 1, timeout_s=10)
        await wait_for(lambda: stored_co(bed, f"{HOME}:alarms") == "emergency", timeout_s=5)
        assert bed.daemon.process is not None
        bed.daemon.process.kill()
        assert await bed.daemon.wait_exit() == -signal.SIGKILL
        bed.home.set_co(BEDROOM, "ok")
        await bed.daemon.start()
        await bed.daemon.wait_connected(2)
        await wait_for(lambda: bed.titles()["CO cleared in the Home"] == 1, timeout_s=10)
        await anyio.sleep(0.5)
        assert bed.titles()["CO cleared in the Home"] == 1, bed.titles()
