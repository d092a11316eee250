"""A rule cannot hold the daemon: a blocking stretch is stopped at the block budget
(time.sleep, a busy loop, a blocking socket read), a runaway is stopped at the command cap,
the other rules go on, and under `roost.testing` the author's test fails instead of hanging."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
import structlog

from roost.core.clock import settle
from roost.core.events import Outcome
from roost.core.model import Change
from roost.engine.isolation import INTERRUPT_SIGNAL
from roost.testing import RunawayRule, simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

BLOCKERS = {
    "sleep": "time.sleep(30)",
    "busy loop": "while True:\n        pass",
    "socket read": "socket.create_connection(ADDRESS).recv(10)",
    # Past its first await the run goes on in its own cancel scope (the first stretch runs
    # inline, without one): the watchdog stops a later stretch just the same.
    "sleep after an await": "await anyio.sleep(0)\n    time.sleep(30)",
}

BLOCKING_RULE = """
import socket, time
import anyio
from roost import rule, when

ADDRESS = {address!r}

@rule(on=when("co"))
async def blocker(event, home):
    {blocker}

@rule(on=when("co"))
async def after_it(event, home):
    await home.notify("still here")
"""


@pytest.mark.parametrize("kind", list(BLOCKERS))
async def test_a_blocking_rule_is_stopped_at_the_budget_and_the_others_run(
    tmp_path: Path, kind: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        text = BLOCKING_RULE.format(address=server.getsockname(), blocker=BLOCKERS[kind])
        rule_file(tmp_path, "blocking.py", text)
        before = signal.getsignal(INTERRUPT_SIGNAL)
        async with simulate(tmp_path, HOME) as home:
            started = time.monotonic()
            with pytest.raises(RunawayRule, match=r"blocker.*held the event loop"):
                await home.set("Hallway", co="warning")
            elapsed = time.monotonic() - started
            assert home.titles() == ["still here"]
            trace = home.traces("blocker")[-1]
            assert trace.result == "blocked"
            assert home.engine.stats["blocker"].stopped == 1
        assert elapsed < 5.0  # the budget is 0.5 s; 30 s of sleep would be the failure
        assert signal.getsignal(INTERRUPT_SIGNAL) == before  # the handler is restored


STUBBORN_RULE = """
import time
from roost import rule, when

@rule(on=when("co"))
async def stubborn(event, home):
    for _ in range(3):  # each catch costs another budget: a stubborn rule is slow to stop
        try:
            time.sleep(30)
        except BaseException:
            pass
"""


async def test_a_rule_that_catches_the_stop_is_stopped_again(tmp_path: Path) -> None:
    rule_file(tmp_path, "stubborn.py", STUBBORN_RULE)
    async with simulate(tmp_path, HOME) as home:
        started = time.monotonic()
        with pytest.raises(RunawayRule, match="stubborn"):
            await home.set("Hallway", co="warning")
        assert time.monotonic() - started < 10.0
        assert home.traces("stubborn")[-1].result == "blocked"


RUNAWAY_RULE = """
from roost import rule, when

@rule(on=when("co"))
async def runaway(event, home):
    while True:
        await home.device("Den").set_heat(21)
"""


async def test_a_runaway_rule_fails_the_authors_test_at_the_command_cap(tmp_path: Path) -> None:
    rule_file(tmp_path, "runaway.py", RUNAWAY_RULE)
    async with simulate(tmp_path, HOME) as home:
        with pytest.raises(RunawayRule, match="more than 50 commands in one run"):
            await home.set("Hallway", co="warning")
        assert len(home.commands) == 50
        assert home.traces("runaway")[-1].result == "stopped"


async def test_a_runaway_fails_the_test_at_the_end_if_nothing_checked_before(
    tmp_path: Path,
) -> None:
    rule_file(tmp_path, "runaway.py", RUNAWAY_RULE)

    async def straight_to_the_engine() -> None:  # past the checks of `home.set`
        async with simulate(tmp_path, HOME) as home:
            alarm = home.find("Hallway")
            await home.state.patch("test", [Change(alarm.id, "co", "warning")], home.clock.now())
            await settle()

    with pytest.raises(RunawayRule, match="runaway"):
        await straight_to_the_engine()


POLITE_LOOP = """
import anyio
from roost import rule, when

@rule(on=when("co"), timeout="2s")
async def spins(event, home):
    while True:
        await anyio.sleep(0)
"""


async def test_a_rule_that_never_lets_virtual_time_pass_times_out_in_real_time(
    tmp_path: Path,
) -> None:
    rule_file(tmp_path, "spins.py", POLITE_LOOP)
    async with simulate(tmp_path, HOME) as home:
        with pytest.raises(RunawayRule, match=r"spins.*real time"):
            await home.set("Hallway", co="warning")


REFUSED_RULE = """
from roost import rule, when

@rule(on=when("motion"))
async def too_hot(event, home):
    await home.device("Den").set_heat(99)
"""


async def test_repeated_refusals_fold_into_one_log_line_per_rule_per_minute(
    tmp_path: Path,
) -> None:
    rule_file(tmp_path, "too_hot.py", REFUSED_RULE)
    async with simulate(tmp_path, HOME) as home:
        with structlog.testing.capture_logs() as logs:
            for _ in range(100):
                await home.motion("Front Door")
            await home.advance("61s")
            await home.motion("Front Door")
        lines = [e for e in logs if e["event"] == "command refused"]
        assert len(lines) == 2
        assert "refusals_not_logged_before" not in lines[0]
        assert lines[1]["refusals_not_logged_before"] == 99
        assert len(home.actions(Outcome.REFUSED)) == 101  # each one still has its outcome
