"""Run modes (single, restart, queued, parallel) and rate limits (cooldown, N per window,
debounce, notifications per tag), on the virtual clock, in both faces."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.engine.windows import TagLimiter
from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

# Each motion starts a run that notifies, waits 5 minutes (virtual), and notifies again.
SLOW = """
from roost import rule, when

@rule(on=when("motion"), mode="{mode}", max=2)
async def slow(event, home):
    await home.notify(f"start {{event.id[-4:]}}")
    await home.delay("5m")
    await home.notify("done")
"""


async def run_three_motions(tmp_path: Path, mode: str) -> list[str]:
    rule_file(tmp_path, "r.py", SLOW.format(mode=mode))
    async with simulate(tmp_path, HOME) as home:
        for _ in range(3):
            await home.motion("Front Door")
            await home.advance("1m")
        await home.advance("30m")
        results = [t.result for t in home.traces("slow")]
        return [n.title.split()[0] for n in home.notifications] + [str(r) for r in results]


async def test_single_ignores_triggers_while_running(tmp_path: Path) -> None:
    assert await run_three_motions(tmp_path, "single") == [
        "start",
        "done",
        "ran",
        "skipped",
        "skipped",
    ]


async def test_restart_cancels_the_running_one(tmp_path: Path) -> None:
    assert await run_three_motions(tmp_path, "restart") == [
        "start",
        "start",
        "start",
        "done",
        "cancelled",
        "cancelled",
        "ran",
    ]


async def test_queued_runs_one_after_the_other_up_to_max(tmp_path: Path) -> None:
    # max=2: one running and one waiting; the third is dropped
    assert await run_three_motions(tmp_path, "queued") == [
        "start",
        "done",
        "start",
        "done",
        "ran",
        "ran",
        "skipped",
    ]


async def test_parallel_runs_side_by_side_up_to_max(tmp_path: Path) -> None:
    assert await run_three_motions(tmp_path, "parallel") == [
        "start",
        "start",
        "done",
        "done",
        "ran",
        "ran",
        "skipped",
    ]


async def test_a_skipped_run_says_why(tmp_path: Path) -> None:
    rule_file(tmp_path, "r.py", SLOW.format(mode="single"))
    async with simulate(tmp_path, HOME) as home:
        await home.motion("Front Door")
        await home.motion("Front Door")
        assert home.traces("slow")[-1].reason == "mode single: a run is still going"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "r.py",
            """
            from roost import rule, when

            @rule(on=when("motion"), cooldown="10m", rate="3/1h")
            async def limited(event, home):
                await home.notify("motion")
            """,
        ),
        (
            "r.toml",
            """
            [[rule]]
            name = "limited"
            on = { event = "motion" }
            cooldown = "10m"
            rate = "3 per 1h"
            do = [{ action = "notify", title = "motion" }]
            """,
        ),
    ],
)
async def test_cooldown_and_n_per_window(tmp_path: Path, name: str, text: str) -> None:
    rule_file(tmp_path, name, text)
    async with simulate(tmp_path, HOME) as home:
        for _ in range(12):  # one motion every 5 minutes for an hour
            await home.motion("Front Door")
            await home.advance("5m")
        assert len(home.titles()) == 3  # minutes 0, 10, 20; then the hour is full
        reasons = [t.reason for t in home.traces("limited") if t.result == "skipped"]
        assert reasons.count("cooldown: 300s left") == 3
        assert reasons.count("rate limit: 3 runs per 3600s reached") == 6
        await home.advance("5m")  # minute 65: the first run has left the window
        await home.motion("Front Door")
        assert len(home.titles()) == 4


async def test_debounce_runs_once_things_are_quiet(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.toml",
        """
        [[rule]]
        name = "settled"
        on = { event = "temperature", device = "Den" }
        debounce = "2m"
        do = [{ action = "notify", title = "settled at {event.new}" }]
        """,
    )
    async with simulate(tmp_path, HOME) as home:
        for value in (21.0, 21.5, 22.0):
            await home.set("Den", ambient_c=value)
            await home.advance("1m")
        assert home.titles() == []
        await home.advance("1m")
        assert home.titles() == ["settled at 22.0"]
        results = [(t.result, t.reason) for t in home.traces("settled")]
        assert results[0] == ("skipped", "debounce: a later trigger replaced it")
        assert results[-1] == ("ran", "")


async def test_a_flapping_sensor_does_not_send_a_hundred_pushes(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "r.toml",
        """
        [[rule]]
        name = "door"
        on = { event = "motion" }
        mode = "parallel"
        do = [{ action = "notify", title = "motion", tags = ["door"] }]

        [[rule]]
        name = "other"
        on = { event = "co" }
        do = [{ action = "notify", title = "co", tags = ["urgent"] }]
        """,
    )
    async with simulate(tmp_path, HOME, notify_limit=TagLimiter(5, 600)) as home:
        for _ in range(100):
            await home.motion("Front Door")
            await home.advance("1s")
        await home.set("Hallway", co="warning")  # another tag is not held back
        assert home.titles() == ["motion"] * 5 + ["co"]
        suppressed = [s for t in home.traces("door") for s in t.steps if s.outcome == "suppressed"]
        assert len(suppressed) == 95
        assert "rate limit for door" in suppressed[0].detail
        await home.advance("10m")
        await home.motion("Front Door")
        assert home.titles()[-1] == "motion"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('mode = "sometimes"', "mode: Input should be 'single', 'restart', 'queued' or 'parallel'"),
        ("max = 0", "max: Input should be greater than or equal to 1 (not 0)"),
        ('rate = "lots"', "not a rate"),
        ('debounce = "soon"', "not a duration"),
    ],
)
def test_bad_options_are_load_errors(tmp_path: Path, text: str, message: str) -> None:
    from roost.engine.loader import load_directory

    rule_file(
        tmp_path,
        "r.toml",
        f'[[rule]]\nname = "x"\non = {{ event = "co" }}\n{text}\n'
        'do = [{ action = "notify", title = "t" }]\n',
    )
    errors = [str(e) for e in load_directory(tmp_path).errors]
    assert len(errors) == 1, errors
    assert message in errors[0]
