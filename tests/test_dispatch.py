"""The dispatcher on the real path: dispatcher → WWN provider → simulator over HTTP.

Coalescing, back-off on 5xx, Retry-After on 429, no retry on a semantic 400, a retry that
never applies twice, stale deadlines, rate limits that delay instead of refusing, echo
confirmation with its latency, dry runs, and the audit trail in the event journal.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from roost.config.settings import Settings
from roost.core.commands import FailureReason, SetFanTimer, SetHeat, SetMode
from roost.core.events import CommandOutcome, Outcome, SetpointChanged
from roost.core.model import ThermostatMode
from roost.providers.base import Rate, WriteLimits
from tests.command_stack import BEDROOM, FAST, HOME, LIVING, CommandStack, command_stack

pytestmark = pytest.mark.anyio

PATH = "/devices/thermostats/" + LIVING

THREE_SETPOINTS = """
from roost import rule, when

@rule(on=when("presence", to="away"))
async def fidget(event, home):
    thermostat = home.thermostats(name="Living Room")[0]
    for celsius in (21, 22, 23):
        await thermostat.set_heat(celsius)
"""


def sent(stack: CommandStack, command: str) -> list[CommandOutcome]:
    return [o for o in stack.outcomes(command) if o.outcome is Outcome.SENT]


def gaps(stack: CommandStack) -> list[float]:
    times = [r.at for r in stack.answered()]
    return [b - a for a, b in itertools.pairwise(times)]


async def test_superseded_setpoints_coalesce_and_the_last_wins(tmp_path: Path) -> None:
    async with command_stack(tmp_path, rules={"fidget.py": THREE_SETPOINTS}) as stack:
        await stack.away()
        await stack.until(lambda: Outcome.CONFIRMED in [o.outcome for o in stack.outcomes()])
        assert stack.cloud.writes == [(PATH, {"target_temperature_c": 23})]
        by_action = {o.action: o.outcome for o in stack.outcomes()}
        assert by_action == {
            "heat to 21 °C": Outcome.SUPERSEDED,
            "heat to 22 °C": Outcome.SUPERSEDED,
            "heat to 23 °C": Outcome.CONFIRMED,
        }
        ids = {o.command for o in stack.outcomes()}
        superseded = [o for o in stack.outcomes() if o.outcome is Outcome.SUPERSEDED]
        assert all(o.reason.removeprefix("superseded by ") in ids for o in superseded)


async def test_a_retrying_command_is_superseded_by_a_newer_one(tmp_path: Path) -> None:
    async with command_stack(tmp_path) as stack:
        stack.cloud.fail_next("write", 1, 429, headers={"Retry-After": "1.0"})
        old = await stack.submit(LIVING, SetHeat(21.0))
        await stack.until(lambda: len(stack.answered()) == 1)
        new = await stack.submit(LIVING, SetHeat(22.0))
        assert (await stack.settled(old.command)).outcome is Outcome.SUPERSEDED
        assert (await stack.settled(new.command, timeout_s=8)).outcome is Outcome.CONFIRMED
        assert stack.cloud.writes == [(PATH, {"target_temperature_c": 22})]


async def test_a_5xx_is_retried_with_growing_back_off(tmp_path: Path) -> None:
    async with command_stack(tmp_path) as stack:
        stack.cloud.fail_next("write", 2, 503)
        queued = await stack.submit(LIVING, SetHeat(21.5))
        done = await stack.settled(queued.command)
        assert done.outcome is Outcome.CONFIRMED
        assert [r.status for r in stack.answered()] == [503, 503, 200]
        assert {r.command_id for r in stack.answered()} == {queued.command}
        assert [o.attempt for o in sent(stack, queued.command)] == [1, 2, 3]
        first, second = gaps(stack)
        # equal jitter: the n-th wait is between half and all of initial·2ⁿ⁻¹
        assert FAST.retry_initial_s / 2 <= first
        assert FAST.retry_initial_s <= second


async def test_a_5xx_that_persists_fails_with_a_typed_reason(tmp_path: Path) -> None:
    async with command_stack(tmp_path) as stack:
        stack.runtime.dispatcher.tuning = replace(FAST, max_attempts=3)
        stack.cloud.fail_next("write", 5, 500)
        queued = await stack.submit(LIVING, SetHeat(21.5))
        failed = await stack.settled(queued.command)
        assert (failed.outcome, failed.failure, failed.attempt) == (
            Outcome.FAILED,
            FailureReason.SERVER_ERROR,
            3,
        )
        assert "HTTP 500" in failed.reason
        assert len(stack.answered()) == 3


async def test_a_429_waits_for_its_retry_after(tmp_path: Path) -> None:
    async with command_stack(tmp_path) as stack:
        stack.cloud.fail_next("write", 1, 429, headers={"Retry-After": "0.6"})
        queued = await stack.submit(LIVING, SetHeat(21.5))
        await stack.until(lambda: len(stack.answered()) == 1)
        other = await stack.submit(BEDROOM, SetHeat(18.5))  # the pause holds the account
        assert (await stack.settled(queued.command)).outcome is Outcome.CONFIRMED
        assert (await stack.settled(other.command)).outcome is Outcome.CONFIRMED
        living = [r.at for r in stack.answered() if r.path.endswith(LIVING)]
        bedroom = [r.at for r in stack.answered() if r.path.endswith(BEDROOM)]
        assert len(living) == 2
        assert len(bedroom) == 1
        assert living[1] - living[0] >= 0.55
        assert bedroom[0] - living[0] >= 0.55


async def test_a_semantic_400_is_not_retried(tmp_path: Path) -> None:
    async with command_stack(tmp_path) as stack:
        stack.home.set_mode(LIVING, "eco")  # WWN refuses setpoints in eco
        await stack.until(
            lambda: stack.runtime.state.device(LIVING).mode is ThermostatMode.ECO  # type: ignore[union-attr]
        )
        queued = await stack.submit(LIVING, SetHeat(21.0))
        failed = await stack.settled(queued.command)
        assert (failed.outcome, failed.failure) == (Outcome.FAILED, FailureReason.INVALID)
        assert "Cannot change target temperature while in eco mode" in failed.reason
        assert [r.status for r in stack.answered()] == [400]


async def test_a_retry_never_applies_twice(tmp_path: Path) -> None:
    """The cloud applies the write but the answer is lost (500): the echo settles it."""
    tuning = replace(FAST, echo_grace_s=1.0)
    async with command_stack(tmp_path, tuning=tuning) as stack:
        stack.cloud.fail_next("write", 1, 500, after_apply=True)
        queued = await stack.submit(LIVING, SetHeat(23.0))
        done = await stack.settled(queued.command)
        assert done.outcome is Outcome.CONFIRMED
        assert done.reason == "the device's echo"
        assert [(r.status, r.applied, r.command_id) for r in stack.answered()] == [
            (500, True, queued.command)
        ]
        assert stack.cloud.writes == [(PATH, {"target_temperature_c": 23.0})]
        assert [o.attempt for o in sent(stack, queued.command)] == [1]


async def test_a_command_past_its_deadline_is_dropped_unsent(tmp_path: Path) -> None:
    slow = WriteLimits(per_device=Rate(burst=1, every_s=30.0))
    async with command_stack(tmp_path, limits=slow) as stack:
        first = await stack.submit(LIVING, SetHeat(21.0))
        stale = await stack.submit(LIVING, SetMode(ThermostatMode.COOL), deadline_s=0.4)
        assert (await stack.settled(first.command)).outcome is Outcome.CONFIRMED
        dropped = await stack.settled(stale.command)
        assert dropped.outcome is Outcome.DROPPED
        assert "deadline" in dropped.reason
        assert [json.loads(r.body) for r in stack.answered()] == [{"target_temperature_c": 21.0}]


async def test_a_rate_limit_delays_a_write_and_does_not_refuse_it(tmp_path: Path) -> None:
    spaced = WriteLimits(per_device=Rate(burst=1, every_s=0.5))
    async with command_stack(tmp_path, limits=spaced) as stack:
        first = await stack.submit(LIVING, SetHeat(21.0))
        second = await stack.submit(LIVING, SetFanTimer(15))
        assert (await stack.settled(first.command)).outcome is Outcome.CONFIRMED
        assert (await stack.settled(second.command)).outcome is Outcome.CONFIRMED
        assert len(stack.answered()) == 2
        assert gaps(stack)[0] >= 0.45


async def test_the_echo_confirms_with_latency_and_causation(tmp_path: Path) -> None:
    async with command_stack(tmp_path) as stack:
        queued = await stack.submit(LIVING, SetHeat(22.5))
        confirmed = await stack.settled(queued.command)
        assert confirmed.outcome is Outcome.CONFIRMED
        assert confirmed.latency_s is not None
        assert 0 < confirmed.latency_s < 2
        echo = next(
            e for e in stack.events if isinstance(e, SetpointChanged) and e.device == LIVING
        )
        assert echo.context.causation == queued.command
        assert echo.context.correlation == "test-chain"
        for outcome in stack.outcomes(queued.command):
            assert (outcome.rule, outcome.cause, outcome.target) == ("test", "test-event", LIVING)
            assert outcome.context.correlation == "test-chain"
            assert (outcome.structure, outcome.device) == (HOME, LIVING)
        assert stack.kinds(queued.command) == [Outcome.QUEUED, Outcome.SENT, Outcome.CONFIRMED]


async def test_a_write_that_changes_nothing_is_confirmed_from_the_state(tmp_path: Path) -> None:
    async with command_stack(tmp_path) as stack:
        queued = await stack.submit(LIVING, SetHeat(20.0))  # the demo home holds 20 already
        confirmed = await stack.settled(queued.command)
        assert (confirmed.outcome, confirmed.reason) == (Outcome.CONFIRMED, "already so")


DRY_RULE = """
from roost import rule, when

@rule(on=when("presence", to="away"), dry_run={dry})
async def eco(event, home):
    for thermostat in home.thermostats(structure=event.structure):
        await thermostat.set_eco(True)
"""


@pytest.mark.parametrize(("rule_dry", "global_dry"), [(True, False), (False, True)])
async def test_a_dry_run_passes_the_guards_is_recorded_and_never_sent(
    tmp_path: Path, rule_dry: bool, global_dry: bool
) -> None:
    def dry(settings: Settings) -> None:
        settings.daemon.dry_run = global_dry

    rules = {"eco.py": DRY_RULE.format(dry=rule_dry)}
    async with command_stack(tmp_path, rules=rules, configure=dry) as stack:
        await stack.away()
        await stack.until(lambda: len(stack.outcomes()) == 2)
        assert [o.outcome for o in stack.outcomes()] == [Outcome.DRY_RUN, Outcome.DRY_RUN]
        assert stack.cloud.requests == []
        trace = stack.runtime.engine.traces.latest("eco")[-1]
        assert [s.outcome for s in trace.steps] == ["dry_run", "dry_run"]


async def test_a_dry_run_is_still_refused_by_a_guard(tmp_path: Path) -> None:
    rule = DRY_RULE.format(dry=True).replace("set_eco(True)", "set_heat(31)")
    async with command_stack(tmp_path, rules={"eco.py": rule}) as stack:
        await stack.away()
        await stack.until(lambda: len(stack.outcomes()) == 2)
        assert {(o.outcome, o.guard) for o in stack.outcomes()} == {(Outcome.REFUSED, "safe_band")}


async def test_the_journal_holds_the_whole_chain(tmp_path: Path) -> None:
    """event → rule → command → outcome, from the journal alone."""
    async with command_stack(tmp_path, rules={"fidget.py": THREE_SETPOINTS}) as stack:
        await stack.away()
        await stack.until(lambda: Outcome.CONFIRMED in [o.outcome for o in stack.outcomes()])
        store = stack.runtime.store
        journal: list[dict[str, object]] = []

        async def journaled() -> bool:
            journal[:] = [e.body for e in await store.journal(event="command")]
            return any(b["outcome"] == "confirmed" for b in journal)

        with anyio.fail_after(5):
            while not await journaled():
                await anyio.sleep(0.02)  # the journal writer runs on its own
        confirmed = next(b for b in journal if b["outcome"] == "confirmed")
        presence = [e.body for e in await store.journal(event="presence")]
        assert confirmed["cause"] == presence[-1]["id"]
        assert confirmed["rule"] == "fidget"
        chain = [b["outcome"] for b in journal if b["command"] == confirmed["command"]]
        assert chain == ["queued", "sent", "confirmed"]
        assert {b["rule"] for b in journal} == {"fidget"}
        assert all(b["context"]["correlation"] for b in journal)  # type: ignore[index]
