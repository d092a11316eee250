"""The simulated cloud inside the nspawn container (it has a private network): the WWN
simulator on 127.0.0.1:18080 and the push sink on 127.0.0.1:18081, whose notifications
are appended to /var/lib/roost-sim/received.jsonl for the test script to read."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio

from roost.service.systemd import sd_notify
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.http import serve
from roost.simulator.sink import NotificationSink

TOKEN = "c.nspawn-test-token"
OUT = Path("/var/lib/roost-sim/received.jsonl")


def record(payload: dict[str, Any]) -> None:
    with OUT.open("a", encoding="utf-8") as f:
        f.write(json.dumps({k: v for k, v in payload.items() if k != "_headers"}) + "\n")


async def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sink = NotificationSink(on_receive=record)
    async with (
        nest_wwn.serve(SimHome.demo(), token=TOKEN, keepalive_s=5, port=18080),
        serve(sink.handle, port=18081),
    ):
        print("simulator ready", flush=True)
        sd_notify("READY=1")  # the roost-sim unit is Type=notify
        await anyio.sleep_forever()


if __name__ == "__main__":
    sys.exit(anyio.run(main))
