# ruff: noqa: E501  (the anchors' scripts, ../shared/anchors/, formatted by ruff)
"""Anchor: Home Assistant's core state machine + event bus, end to end, on this machine.

Times N state writes (hass.states.async_set) on 1000 entities, each producing a state_changed
event that a tracker for all 1000 entities (async_track_state_change_event) receives; the clock
covers the writes and the drain, so it is comparable to a daemon's diff -> event -> rule-match path.
Run with the Home Assistant venv's python: python ha_state_bench.py [N]
"""

import asyncio
import sys
import tempfile
import time

from homeassistant import core
from homeassistant.helpers.event import async_track_state_change_event


async def main(n: int) -> None:
    hass = core.HomeAssistant(tempfile.mkdtemp(prefix="ha-bench-"))
    await hass.async_start()
    count = 0

    @core.callback
    def listener(event):
        nonlocal count
        count += 1

    ids = [f"sensor.temp{i}" for i in range(1000)]
    async_track_state_change_event(hass, ids, listener)
    for e in ids:
        hass.states.async_set(e, "init")
    await hass.async_block_till_done()
    count = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(n):
        hass.states.async_set(ids[i % 1000], str(i))
    await hass.async_block_till_done()
    dt = time.perf_counter() - t0
    dc = time.process_time() - c0
    assert count == n, count
    print(
        f"ha_state_changes_per_s {n / dt:.0f}  ({n} changes in {dt:.3f}s)  cpu_per_s {n / dc:.0f} (cpu {dc:.3f}s)"
    )
    await hass.async_stop()


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000))
