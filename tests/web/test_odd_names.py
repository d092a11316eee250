"""A name from the cloud with a lone surrogate (JSON can carry one, "\\ud800") is shown as
`\\ud800`, and every page still renders. Before the fix the page could not be encoded:
the home page answered 500 for as long as such a name was in the home, and so did every
page that shows it (an audit of hostile input found it). Through `roost run` with the
Works with Nest simulator."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from roost.simulator.home import SimHome
from roost.web.text import visible
from tests.web.bed import running

pytestmark = pytest.mark.anyio

RULE = '[[rule]]\nname = "co"\non = { event = "co" }\ndo = [{ action = "notify", title = "co" }]\n'


def test_a_lone_surrogate_is_made_visible() -> None:
    assert visible("Hall\ud800way") == "Hall\\ud800way"
    assert visible("Küche 🔥") == "Küche 🔥"  # whole characters stay as they are


async def test_every_page_renders_with_a_lone_surrogate_in_a_name(tmp_path: Path) -> None:
    home = SimHome.demo()
    home.alarms["alarm-hallway"].name = "Hall\ud800way"
    home.thermostats["thermostat-living-room"].room = "Liv\udfffing"
    async with running(tmp_path, {"co.toml": RULE}, home) as bed, httpx.AsyncClient() as client:
        for path in ("/", "/live", "/rules", "/outbox", "/charts"):
            response = await client.get(bed.base + path)
            assert response.status_code == 200, path
        assert "Hall\\ud800way" in (await client.get(bed.base + "/")).text
