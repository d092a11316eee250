# ruff: noqa: E501  (the anchors' scripts, ../shared/anchors/, formatted by ruff)
"""Anchor: Home Assistant's automation engine, end to end, on this machine.

1000 automations, automation i triggered by a state change of sensor.temp<i>, with a numeric
condition and one action (fire an event). Times N state writes until every automation run has
fired its action event. Comparable to a rules daemon's change -> rule -> action path.
Run with the Home Assistant venv's python: python ha_automation_bench.py [N]
"""

import asyncio
import sys
import tempfile
import time

from homeassistant import bootstrap, config_entries, core, loader
from homeassistant.setup import async_setup_component


async def main(n: int) -> None:
    hass = core.HomeAssistant(tempfile.mkdtemp(prefix="ha-bench-"))
    loader.async_setup(hass)
    hass.config.skip_pip = True
    hass.config_entries = config_entries.ConfigEntries(hass, {})
    await bootstrap.async_load_base_functionality(hass)
    assert await async_setup_component(hass, "homeassistant", {})
    autos = [
        {
            "id": f"a{i}",
            "alias": f"rule {i}",
            "mode": "parallel",
            "max": 100000,
            "trigger": {"platform": "state", "entity_id": f"sensor.temp{i}"},
            "condition": {
                "condition": "numeric_state",
                "entity_id": f"sensor.temp{i}",
                "above": -1,
            },
            "action": {"event": "bench_done"},
        }
        for i in range(1000)
    ]
    for i in range(1000):
        hass.states.async_set(f"sensor.temp{i}", "0")
    assert await async_setup_component(hass, "automation", {"automation": autos})
    await hass.async_start()
    await hass.async_block_till_done()
    done = 0

    @core.callback
    def on_done(event):
        nonlocal done
        done += 1

    hass.bus.async_listen("bench_done", on_done)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(n):
        hass.states.async_set(f"sensor.temp{i % 1000}", str(i + 1))
        if i % 1000 == 999:
            await asyncio.sleep(0)
    await hass.async_block_till_done()
    dt = time.perf_counter() - t0
    dc = time.process_time() - c0
    assert done == n, (done, n)
    print(
        f"ha_automation_runs_per_s {n / dt:.0f}  ({n} changes -> {done} automation actions in {dt:.3f}s)  cpu_per_s {n / dc:.0f} (cpu {dc:.3f}s)"
    )
    await hass.async_stop()


asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
