"""roost's side of one `anchor.py` round: each figure once (after a warm-up), per CPU-second.

    .venv/bin/python bench/anchor_roost.py

Prints one JSON object on its last line: figure name → rate per second of CPU time.
"""

from __future__ import annotations

import json

import anyio

from common import quiet_logging, thermostat_id
from engine_harness import measure, measure_publishing, patches

THERMOSTATS = 1_000
RULES = 1_000
FIRE_CHANGES = 5_000
STORE_CHANGES = 2_000
NOMATCH_CHANGES = 50_000


async def fire(changes: int, store: bool) -> tuple[float, float]:
    devices = [thermostat_id(i) for i in range(THERMOSTATS)]
    feed = patches("ambient_c", devices, changes, 1, (18.5, 18.0))
    return await measure(THERMOSTATS, RULES, feed, changes, store)


async def publishing(changes: int) -> tuple[float, float]:
    devices = [thermostat_id(i) for i in range(THERMOSTATS)]
    feed = patches("ambient_c", devices, changes, 1, (18.5, 18.0))
    return await measure_publishing(THERMOSTATS, RULES, feed, changes)


async def nomatch(kind: str, changes: int) -> tuple[float, float]:
    if kind == "humidity":
        thermostats, attribute, changed, values = (
            THERMOSTATS,
            "humidity",
            range(1_000),
            (46.0, 45.0),
        )
    else:
        thermostats, attribute = 2 * THERMOSTATS, "ambient_c"
        changed, values = range(1_000, 2_000), (18.5, 18.0)
    devices = [thermostat_id(i) for i in changed]
    feed = patches(attribute, devices, changes, 1, values)
    return await measure(thermostats, RULES, feed, 0, False)


def cpu_rate(fn: object, *args: object, warm: tuple[object, ...]) -> float:
    anyio.run(fn, *warm)  # type: ignore[arg-type]
    return anyio.run(fn, *args)[1]  # type: ignore[arg-type,index]


def main() -> None:
    quiet_logging("warning")
    rates = {
        "fire, engine path": cpu_rate(fire, FIRE_CHANGES, False, warm=(1_000, False)),
        "fire, body publishes": cpu_rate(publishing, FIRE_CHANGES, warm=(1_000,)),
        "fire, with store": cpu_rate(fire, STORE_CHANGES, True, warm=(1_000, True)),
        "no fire, humidity": cpu_rate(
            nomatch, "humidity", NOMATCH_CHANGES, warm=("humidity", 5_000)
        ),
        "no fire, unwatched": cpu_rate(
            nomatch, "unwatched", NOMATCH_CHANGES, warm=("unwatched", 5_000)
        ),
    }
    print(json.dumps(rates))


if __name__ == "__main__":
    main()
