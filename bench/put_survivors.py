"""What one WWN put leaves for the garbage collector: tracked objects made by the put that
are still alive after it, counted over M homes that each take one put.

    .venv/bin/python bench/put_survivors.py [M]        # M = 300

With 10,000 accounts a young collection walks what the puts since the last one left alive
(the new document's copied containers, the rebuilt device, the new home; and anything
else held until the stream's next put, minutes later), and its pause is the stall that
holds `bench/scale.py`'s p99 up. CPython counts a young collection by allocations minus
deallocations of any tracked object, so a put that replaces as much old state as it
leaves new barely moves that count, and the young list grows long between collections:
every object a put leaves is paid for in the pause. Each home here is a `NestWwnProvider`
fed its baseline and then one put with one humidity reading changed, through
`_apply_put` and `_publish` into a shared `HomeState` (as `put_once.py`); collections off
after the baselines, which are frozen, so the young generation is exactly what the second
puts left. No socket, engine or store.
"""

from __future__ import annotations

import collections
import gc
import json
import sys

import anyio

from common import header, reading
from roost.core.bus import Bus
from roost.core.clock import SystemClock
from roost.core.secret import Secret
from roost.providers.health import PayloadHealth
from roost.providers.nest_wwn import NestWwnAccount
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.simulator import nest_wwn
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from stream_sim import build_home

THERMOSTATS = 2  # as scale_sim.py's homes


def two_puts(n: int) -> tuple[str, str]:
    """A home's baseline put and the put after one humidity reading changed."""
    home = build_home(THERMOSTATS)
    texts = []
    for changed in (False, True):
        if changed:
            next(iter(home.thermostats.values())).humidity = reading(n)  # type: ignore[assignment]
            home.changed()
        document = nest_wwn.document(home, token="bench", base_url="http://127.0.0.1:1")
        texts.append(json.dumps({"path": "/", "data": document}))
    return texts[0], texts[1]


async def survivors(homes: int) -> list[object]:
    bus = Bus()
    inbox = bus.subscribe("engine", buffer=16)
    state = HomeState(bus, EchoTracker(clock=SystemClock()))
    feeds = [two_puts(n) for n in range(homes)]
    providers: list[tuple[NestWwnProvider, PayloadHealth]] = []
    for n in range(homes):
        settings = NestWwnAccount(
            name=f"h{n}", provider="nest_wwn", api_url="http://127.0.0.1:1", token=Secret("b")
        )
        providers.append((NestWwnProvider(settings), state.payload_health(f"h{n}")))

    async def put(n: int, which: int) -> None:
        provider, health = providers[n]
        update = provider._apply_put(feeds[n][which], health)
        assert update is not None
        await provider._publish(update, state, catch_up=which == 0)
        while True:
            try:
                inbox.receive_nowait()
            except anyio.WouldBlock:
                break

    for n in range(homes):
        await put(n, 0)
    gc.collect()
    gc.freeze()
    gc.disable()
    for n in range(homes):
        await put(n, 1)
    return gc.get_objects(0)


def main() -> None:
    homes = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    header("put survivors: tracked objects a WWN put leaves alive", f"M = {homes} homes")
    young = anyio.run(survivors, homes)
    visits = sum(len(gc.get_referents(o)) for o in young)
    print(
        f"   per put: {len(young) / homes:.1f} tracked objects left alive, "
        f"{visits / homes:.0f} references from them (what a collection visits)"
    )
    kinds = collections.Counter(type(o).__qualname__ for o in young).most_common(12)
    print("   by type: " + ", ".join(f"{name} {count / homes:.2f}" for name, count in kinds))


if __name__ == "__main__":
    main()
