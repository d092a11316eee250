"""roost.testing has a helper for every event kind a rule can be written for."""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.testing import simulate
from tests.rulekit import HOME, rule_file

pytestmark = pytest.mark.anyio

HOME_WITH_DOORBELL = {**HOME, "doorbells": {"Porch": {}}}


async def test_every_helper_fires_its_event(tmp_path: Path) -> None:
    rule_file(
        tmp_path,
        "all.py",
        """
        from roost import rule, when

        KINDS = ["presence", "co", "smoke", "temperature", "connectivity", "motion", "person",
                 "sound", "chime"]

        @rule(on=[when(kind) for kind in KINDS], mode="parallel")
        async def record(event, home):
            shown = getattr(event, "new", event.device)
            await home.notify(f"{event.name} {shown}", tags=[event.name])
        """,
    )
    async with simulate(tmp_path, HOME_WITH_DOORBELL) as home:
        await home.leave("House")
        await home.arrive("House")
        await home.co("Hallway", "warning")
        await home.smoke("Hallway", "emergency")
        await home.temperature("Den", 23.5)
        await home.offline("Den")
        await home.online("Den")
        await home.motion("Front Door")
        await home.person("Front Door")
        await home.sound("Front Door")
        await home.chime("Porch")
        assert home.titles() == [
            "presence away",
            "presence home",
            "co warning",
            "smoke emergency",
            "temperature 23.5",
            "connectivity False",
            "connectivity True",
            "motion front-door",
            "person front-door",
            "sound front-door",
            "chime porch",
        ]
