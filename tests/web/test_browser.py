"""The web page in a real browser (Debian's Chromium, driven by Playwright) against
`roost run` on a simulated Nest cloud: the health shows, a CO event appears live within a
second, a rule's non-fire reason is visible, an outbox retry works with the token and is
refused without it, and a hostile device name is shown as text. Screenshots of each page
go to tests/_output/web/."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost.simulator.home import SimHome
from roost.store.sqlite import Store
from tests.web.bed import CHROMIUM, CHROMIUM_ARGS, HOSTILE, OUTPUT, Bed, chromium_missing, running

REQUIRED = os.environ.get("REQUIRE_BROWSER_TESTS") == "1"  # set by .ci/run
pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_missing() is not None and not REQUIRED, reason=str(chromium_missing())
    ),
]

RULES = Path(__file__).parent.parent.parent / "rules"
CO_WHEN_AWAY = """
from roost import rule, when
from roost.rules.conditions import presence

@rule(on=when("co"), condition=presence("away", structure="Home"))
async def co_when_away(event, home):
    await home.notify("CO while nobody is home", tags=["urgent"])
"""
DEAD_KEY = "web-test-dead-1"


async def seed_dead_notification(state: Path) -> None:
    """A notification roost gave up on, in the real store file, before roost starts."""
    store = Store.open(state)
    try:
        now = datetime.now(UTC)
        await store.outbox_add(DEAD_KEY, {"title": "Left the door open", "body": "…"}, now)
        await store.outbox_update(
            DEAD_KEY, state="dead", attempts=9, delivered_to=[], next_attempt_at=now,
            last_error="sink unreachable", finished_at=now,
        )  # fmt: skip
    finally:
        store.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def bed(tmp_path: Path) -> AsyncIterator[Bed]:
    home = SimHome.demo()
    home.camera("camera-front-door").name = HOSTILE
    await seed_dead_notification(tmp_path / "state")
    rules = {
        "alarms.toml": (RULES / "alarms.toml").read_text(),
        "away_eco.py": (RULES / "away_eco.py").read_text(),
        "co_when_away.py": CO_WHEN_AWAY,
    }
    async with running(tmp_path, rules, home) as started:
        yield started


def shot(name: str) -> str:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    return str(OUTPUT / f"{name}.png")


async def new_page(browser: Any) -> Any:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append(f"dialog {d.message}"))
    page.errors = errors
    return page


async def test_health_and_a_hostile_name_shown_as_text(bed: Bed, browser: Any) -> None:
    page = await new_page(browser)
    await page.goto(bed.base + "/")
    account = page.locator('article[data-account="home"]')
    await account.locator(".health", has_text="connected").wait_for(timeout=10_000)
    cells = await account.locator("td.device-name").all_text_contents()
    shown = HOSTILE.replace("\u202e", "\\u202e")
    assert shown in cells  # the markup as text, the bidi override made visible
    assert await page.locator("main script, main img").count() == 0
    assert await page.title() == "roost · Home"
    await page.screenshot(path=shot("home"), full_page=True)
    assert page.errors == []


async def test_a_co_event_appears_live_within_a_second(bed: Bed, browser: Any) -> None:
    page = await new_page(browser)
    await page.goto(bed.base + "/live")
    await page.locator("#stream-state", has_text="live").wait_for(timeout=10_000)
    assert await page.locator("#alarm-banner").is_hidden()
    started = time.monotonic()
    bed.home.set_co("alarm-hallway", "emergency")
    await page.locator('#events tr[data-kind="co"]').first.wait_for(timeout=5_000)
    took = time.monotonic() - started
    assert took < 1.0, f"the CO event took {took:.3f} s to appear"
    assert await page.locator("#alarm-banner").is_visible()
    assert "CO" in await page.locator("#alarm-text").inner_text()
    # A rule's command with its whole chain: presence → rule → command → outcome → echo.
    bed.home.set_away("structure-home", True)
    chain = page.locator("li.chain", has_text="eco_when_away").first
    await chain.locator(".echo").first.wait_for(timeout=10_000)
    text = await chain.inner_text()
    assert "presence" in text
    assert "confirmed" in text
    assert "ms" in text
    hostile_rows = page.locator("#events td.device-name", has_text="<script>")
    bed.home.set_streaming("camera-front-door", False)
    await hostile_rows.first.wait_for(timeout=5_000)
    assert await page.title() == "roost · Live events"
    await page.screenshot(path=shot("live"), full_page=True)
    assert page.errors == []


async def test_a_rules_non_fire_reason_is_visible(bed: Bed, browser: Any) -> None:
    bed.home.set_co("alarm-hallway", "warning")
    page = await new_page(browser)
    rule = page.locator('article[data-rule="co_when_away"]')
    with anyio.fail_after(10):
        while True:
            await page.goto(bed.base + "/rules")
            if await rule.locator("tr.not-fired").count():
                break
            await anyio.sleep(0.2)
    why = await rule.locator("tr.not-fired .why").first.inner_text()
    assert "condition not met" in why
    assert "presence" in why
    assert "✗" in await rule.locator("tr.not-fired li.failed").first.inner_text()
    await page.screenshot(path=shot("rules"), full_page=True)


async def test_outbox_retry_needs_the_token(bed: Bed, browser: Any) -> None:
    page = await new_page(browser)
    await page.goto(bed.base + "/outbox")
    row = page.locator(f'tr[data-key="{DEAD_KEY}"]')
    assert await row.locator(".state").inner_text() == "given up"
    await row.locator("button.retry").click()
    await page.wait_for_url(bed.base + "/outbox/retry", timeout=5_000)
    assert "needs the link" in await page.locator("#refused").inner_text()
    await page.goto(bed.base + "/outbox")
    assert await row.locator(".state").inner_text() == "given up"  # nothing was retried

    code, link, _ = await bed.roost("web-url")
    assert code == 0
    assert "?token=" in link
    await page.goto(link.strip())
    assert "token" not in page.url  # exchanged for a cookie and redirected away
    cookies = await page.context.cookies()
    session = next(c for c in cookies if c["name"] == "roost_session")
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    await page.goto(bed.base + "/outbox")
    await row.locator("button.retry").click()
    await page.wait_for_url(bed.base + "/outbox", timeout=5_000)  # done, back to the list
    with anyio.fail_after(15):
        delivered = await bed.sink.wait_for(1)
    assert any("Left the door open" in str(d) for d in delivered)
    with anyio.fail_after(10):
        while await row.locator(".state").inner_text() != "delivered":
            await anyio.sleep(0.2)
            await page.reload()
    await page.screenshot(path=shot("outbox"), full_page=True)


async def test_charts_draw_each_room(bed: Bed, browser: Any) -> None:
    bed.home.set_ambient("thermostat-living-room", 21.0)
    bed.home.set_away("structure-home", True)  # the eco rule's commands become markers
    page = await new_page(browser)
    with anyio.fail_after(15):
        while True:
            await page.goto(bed.base + "/charts")
            if await page.locator("svg.chart g.command").count():
                break
            await anyio.sleep(0.3)
    assert await page.locator("article.room svg.chart").count() == 2
    assert await page.locator("svg.chart path.line.ambient").count() == 2
    await page.screenshot(path=shot("charts"), full_page=True)
    assert page.errors == []
