"""A TOML rule's `delay` is stored while it runs (so a restart can resume it), and only
while it runs: a finished or superseded run leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from roost.core.timers import TimerKind
from roost.engine.traces import Result
from roost.testing.stack import Stack, running_stack

pytestmark = pytest.mark.anyio

RULE = """
[[rule]]
name = "later"
on = {{ event = "co", to = ["warning", "emergency"] }}
mode = "{mode}"

[[rule.do]]
action = "delay"
for = "{delay}"

[[rule.do]]
action = "notify"
title = "CO {{event.new}}, a while ago"
"""


def stored_delays(stack: Stack) -> list[object]:
    return [r for r in stack.runtime.timers.load_all() if r.kind is TimerKind.DELAY]


def rule_dir(tmp_path: Path, mode: str, delay: str) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "later.toml").write_text(RULE.format(mode=mode, delay=delay))
    return rules


async def co_warning_until_a_delay_is_stored(stack: Stack) -> None:
    await stack.connected()
    stack.home.set_co("alarm-hallway", "warning")
    with anyio.fail_after(5):
        while not stored_delays(stack):
            await anyio.sleep(0.02)


async def test_a_finished_delay_leaves_no_stored_resume_point(tmp_path: Path) -> None:
    rules = rule_dir(tmp_path, "queued", "0.5s")
    async with running_stack(rules, state_dir=tmp_path / "state") as stack:
        await co_warning_until_a_delay_is_stored(stack)
        record = stored_delays(stack)[0]
        assert record.payload["step"] == 1  # type: ignore[attr-defined]
        with anyio.fail_after(5):
            await stack.sink.wait_for(1)
        await anyio.sleep(0.1)
        assert stored_delays(stack) == []


async def test_a_restarted_run_forgets_its_delay(tmp_path: Path) -> None:
    rules = rule_dir(tmp_path, "restart", "30s")
    async with running_stack(rules, state_dir=tmp_path / "state") as stack:
        await stack.connected()
        stack.home.set_co("alarm-hallway", "warning")
        with anyio.fail_after(5):
            while len(stored_delays(stack)) != 1:
                await anyio.sleep(0.02)
        first = stored_delays(stack)[0]
        stack.home.set_co("alarm-hallway", "emergency")  # restarts the run
        with anyio.fail_after(5):
            while [r.id for r in stored_delays(stack)] in ([], [first.id]):  # type: ignore[attr-defined]
                await anyio.sleep(0.02)
        assert len(stored_delays(stack)) == 1


TWO_PUSHES = """
[[rule]]
name = "twice"
on = {{ event = "co", to = "warning" }}

[[rule.do]]
action = "notify"
title = "{first}"

[[rule.do]]
action = "delay"
for = "1s"

[[rule.do]]
action = "notify"
title = "{second}"
"""


async def stopped_inside_the_delay(tmp_path: Path) -> Path:
    """roost stops while a run of `twice` waits in its delay; the rules' directory."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "twice.toml").write_text(TWO_PUSHES.format(first="CO", second="still CO"))
    async with running_stack(rules, state_dir=tmp_path / "state") as stack:
        await co_warning_until_a_delay_is_stored(stack)
    return rules


def titles(stack: Stack) -> list[str]:
    return [str(n.get("title")) for n in stack.sink.received]


async def test_a_run_whose_later_steps_were_edited_is_not_resumed(tmp_path: Path) -> None:
    rules = await stopped_inside_the_delay(tmp_path)
    (rules / "twice.toml").write_text(TWO_PUSHES.format(first="CO", second="edited"))
    async with running_stack(rules, state_dir=tmp_path / "state") as stack:
        await stack.connected()
        with anyio.fail_after(10):
            while not (traces := stack.runtime.engine.traces.latest("twice")):
                await anyio.sleep(0.05)
        assert traces[0].result is Result.SKIPPED
        assert "edited while it waited" in traces[0].reason
        await anyio.sleep(0.5)  # a resumed step, if any, would push now
        assert not {"edited", "still CO"} & set(titles(stack))
        assert stored_delays(stack) == []


async def test_a_run_whose_earlier_steps_were_edited_resumes(tmp_path: Path) -> None:
    rules = await stopped_inside_the_delay(tmp_path)
    (rules / "twice.toml").write_text(TWO_PUSHES.format(first="CO!", second="still CO"))
    async with running_stack(rules, state_dir=tmp_path / "state") as stack:
        await stack.connected()
        with anyio.fail_after(10):
            while "still CO" not in titles(stack):
                await stack.sink.wait_for(len(stack.sink.received) + 1)
        assert stack.runtime.engine.traces.latest("twice")[0].result is Result.RAN
