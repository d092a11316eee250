"""A push whose title names a room in any script (Кухня, 厨房, 🔥), or holds a lone
surrogate a cloud's JSON can carry in a device name ("\\ud800"), is delivered. Before the
fix the dedupe key (which holds the title) went into the `X-Roost-Dedupe-Key` header of
json/xml/form targets unescaped, HTTP headers carry no such characters, and every attempt
failed: a CO emergency in a room called Кухня never reached a webhook. A lone surrogate
failed even earlier, at the outbox write, and a 100 kB room name made a header no
server takes (an audit of hostile input found all three).
In-process against a local HTTP sink, and once through `roost run`."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from roost.core.bus import Bus
from roost.notify.notifier import Notification, Notifier, Target
from roost.simulator.sink import serve_sink
from roost.store.sqlite import Store
from tests.faults.harness import fault_bed, wait_for

pytestmark = pytest.mark.anyio

TITLES = {
    "cyrillic": "CO emergency in the Кухня",
    "han": "CO emergency in the 厨房",
    "emoji": "Smoke in the 🔥 room",
    "lone surrogate": "CO emergency in the Hall\ud800way",
    "huge": "CO emergency in the " + "Hall" * 25_000,  # a name no header limit allows
}


@pytest.mark.parametrize("title", list(TITLES.values()), ids=list(TITLES))
async def test_a_title_in_any_script_is_delivered_with_its_dedupe_key(
    tmp_path: Path, title: str
) -> None:
    store = Store.open(tmp_path)
    key = f"co alert:event-1:{title}"
    try:
        async with serve_sink() as sink, anyio.create_task_group() as tg:
            notifier = Notifier([Target(sink.url)], Bus(), store)
            tg.start_soon(notifier.run)
            await notifier.submit(Notification(key, title, "get out", ("urgent",)))
            with anyio.fail_after(10):
                await sink.wait_for(1)
            tg.cancel_scope.cancel()
    finally:
        store.close()
    [received] = sink.received
    shown = title.replace("\ud800", "\ufffd")
    assert received["title"] == shown
    header = received["_headers"]["x-roost-dedupe-key"]
    assert header.isascii()
    assert len(header) <= 256  # any server's header limit
    shown_key = key.replace("\ud800", "\ufffd")
    if len(shown_key) < 200:
        assert header.encode().decode("unicode_escape") == shown_key


async def test_a_co_emergency_in_a_room_named_in_cyrillic_reaches_the_sink(
    tmp_path: Path,
) -> None:
    async with fault_bed(tmp_path, keepalive_timeout_s=30) as bed:
        await bed.daemon.start()
        await bed.daemon.wait_connected(1)
        alarm = "devices/smoke_co_alarms/alarm-hallway"
        bed.cloud.send_odd_value(f"{alarm}/where_name", "Кухня")
        bed.cloud.send_odd_value(f"{alarm}/name", "Hall\ud800way")
        bed.home.set_co("alarm-hallway", "emergency")
        await wait_for(lambda: bed.titles()["CO emergency in the Кухня"] == 1, timeout_s=15)
