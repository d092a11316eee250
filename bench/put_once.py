"""stream_latency's WWN puts, N of them through the provider's stream path: the program to
count under valgrind, as `fire_once.py` is for rule runs (the stream benchmark's daemon CPU
is mostly per put read, and on a shared machine only a count compares two trees).

    for n in 300 1300; do
        valgrind --tool=callgrind --callgrind-out-file=cg.$n \
            .venv/bin/python bench/put_once.py $n
    done
    # instructions per put = (total of cg.1300 - total of cg.300) / 1000 (`summary:`)

The puts are what `stream_sim.py` streams: the whole document of its home of 10 heating
thermostats, one humidity reading changed per put, as the WWN simulator writes it. Each goes
through `NestWwnProvider._apply_put` (the delta parse, the put applied to the held document,
the incremental normalize, the payload health) and `_publish` (camera events, and the patch
or snapshot into `HomeState`, whose events reach a bus subscriber that drains them). No
socket, no store, no engine. The same FEED puts are built in both runs.
"""

from __future__ import annotations

import json

import anyio

from common import reading
from engine_harness import count_once
from roost.core.bus import Bus
from roost.core.clock import SystemClock
from roost.core.secret import Secret
from roost.providers.nest_wwn import NestWwnAccount
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.simulator import nest_wwn
from roost.state.echo import EchoTracker
from roost.state.home_state import HomeState
from stream_sim import build_home

FEED = 2_000
THERMOSTATS = 10


def puts(count: int) -> list[str]:
    """The data of `count` + 1 consecutive puts (the first is the baseline)."""
    home = build_home(THERMOSTATS)
    thermostats = list(home.thermostats.values())
    out = []
    for n in range(count + 1):
        if n:
            thermostats[(n - 1) % THERMOSTATS].humidity = reading(n - 1)  # type: ignore[assignment]
            home.changed()
        document = nest_wwn.document(home, token="bench", base_url="http://127.0.0.1:1")
        out.append(json.dumps({"path": "/", "data": document}))
    return out


async def stream(count: int) -> None:
    feed = puts(FEED)
    bus = Bus()
    inbox = bus.subscribe("engine", buffer=16)
    state = HomeState(bus, EchoTracker(clock=SystemClock()))
    settings = NestWwnAccount(
        name="bench", provider="nest_wwn", api_url="http://127.0.0.1:1", token=Secret("bench")
    )
    provider = NestWwnProvider(settings)
    health = state.payload_health("bench")
    events = 0
    for n, data in enumerate(feed[: count + 1]):
        update = provider._apply_put(data, health)
        assert update is not None
        await provider._publish(update, state, catch_up=n == 0)
        while True:
            try:
                events += len(inbox.receive_nowait())
            except anyio.WouldBlock:
                break
    if events < count:
        raise AssertionError(f"{count} changed puts made only {events} events")


if __name__ == "__main__":
    count_once(stream, 1_000, FEED)
