"""Bounded parsing (issue 14 item 2): a too deep, too long, too many-device or too big
payload is skipped with a clear error and counted, the provider keeps running, and the
largest document the caps allow keeps a real `roost run` under the unit's MemoryMax."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from roost.core.model import AlarmState, SmokeCoAlarm
from roost.providers.bounds import MAX_DEVICES, MAX_DOCUMENT_BYTES
from roost.providers.nest_wwn.provider import NestWwnProvider
from roost.simulator import http, nest_wwn
from roost.simulator.home import SimHome
from tests.faults.harness import RULES, config_text
from tests.provider_kit import make
from tests.recording import RecordingSink

TOKEN = "c.test-token"
MEMORY_MAX = 256 * 1024 * 1024  # systemd/roost.service MemoryMax=256M


def put(data: Any, path: str = "/") -> bytes:
    text = json.dumps({"path": path, "data": data}, separators=(",", ":"))
    return f"event: put\ndata: {text}\n\n".encode()


def raw_put(text: str) -> bytes:
    return f"event: put\ndata: {text}\n\n".encode()


def sse_server(pieces: Callable[[], list[bytes]]) -> http.Handler:
    """A loopback WWN stream that sends `pieces`, then keep-alives."""

    async def handler(request: http.Request) -> http.StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for piece in pieces():
                yield piece
            while True:
                await anyio.sleep(0.2)
                yield b"event: keep-alive\ndata: null\n\n"

        return http.StreamingResponse(200, body(), {"Content-Type": "text/event-stream"})

    return handler


def minimal_devices(count: int, padding: int = 0) -> dict[str, Any]:
    thermostats: dict[str, Any] = {
        f"t{i}": {"structure_id": "s", "name": "x" * padding} if padding else {"structure_id": "s"}
        for i in range(count)
    }
    return {"devices": {"thermostats": thermostats}, "structures": {"s": {"name": "Home"}}}


@pytest.mark.anyio
async def test_oversized_payloads_are_skipped_and_counted_and_the_stream_goes_on() -> None:
    home = SimHome.demo()
    document = nest_wwn.document(home, token=TOKEN, base_url="http://sim.invalid")
    alarm_id = next(iter(document["devices"]["smoke_co_alarms"]))
    deep = '{"path": "/", "data": ' + "[" * 100_000 + "]" * 100_000 + "}"
    long_path = "/a" * 5_000
    co = json.loads(json.dumps(document))
    co["devices"]["smoke_co_alarms"][alarm_id]["co_alarm_state"] = "emergency"
    pieces = [
        put(document),
        raw_put(deep),  # json: 10^5 levels
        put({"x": 1}, long_path),  # a put path of 5,000 segments
        put(minimal_devices(MAX_DEVICES + 1)),
        put(co),
    ]
    sink = RecordingSink()
    async with http.serve(sse_server(lambda: pieces)) as server:
        wwn = make(NestWwnProvider, "nest_wwn", api_url=server.url, token=TOKEN)
        async with wwn, anyio.create_task_group() as tasks:
            tasks.start_soon(wwn.run, sink)
            await sink.wait_for(lambda: len(sink.snapshots) >= 2, limit_s=20)
            tasks.cancel_scope.cancel()
    health = sink.payload_health("acct")
    assert health.rejected_total == 3
    assert wwn.stats.malformed == 3
    alarm = sink.latest.devices[alarm_id]
    assert isinstance(alarm, SmokeCoAlarm)
    assert alarm.co is AlarmState.EMERGENCY  # the put after the refused ones still counts
    assert health.reason is None  # the good put ended the degraded state


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def largest_allowed_documents() -> list[tuple[str, dict[str, Any]]]:
    """The 100,000-device put from the report and a size cap of empty objects (both refused
    by the objects-and-arrays cap), then the largest documents the caps let through:
    MAX_DEVICES devices padded to the size cap, and a size cap of short strings."""
    wrapper = len(put(minimal_devices(MAX_DEVICES, 1)))
    room = MAX_DOCUMENT_BYTES - 8192  # the SSE line ("data: " + the put) has the same cap
    padding = (room - wrapper) // MAX_DEVICES
    padded = minimal_devices(MAX_DEVICES, padding)
    strings = (room - 200) // 5  # '"ab",' each: the most objects per byte once the
    bomb = minimal_devices(1)  # objects-and-arrays cap has refused `{},{},…`
    bomb["devices"]["thermostats"]["t0"]["junk"] = ["ab"] * strings
    bomb["devices"]["thermostats"]["t0"]["hvac_mode"] = "turbo"  # logged: the put was read
    objects = minimal_devices(1)  # refused by the objects-and-arrays cap: without it,
    objects["devices"]["thermostats"]["t0"]["junk"] = [{}] * ((room - 200) // 3)  # 274 MiB
    return [
        ("100000 devices", minimal_devices(100_000)),
        ("empty objects", objects),
        ("2000 padded devices", padded),
        ("small strings", bomb),
    ]


@pytest.mark.anyio
async def test_the_largest_allowed_document_stays_under_memory_max(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = largest_allowed_documents()
    pieces = [put(doc) for _, doc in documents]
    sizes = [len(p) for p in pieces]
    assert max(sizes) <= MAX_DOCUMENT_BYTES
    assert sizes[0] > 2_900_000  # the reported ~3 MB put of 100,000 minimal devices
    assert min(sizes[1:]) > MAX_DOCUMENT_BYTES * 0.95  # the largest the size cap allows
    async with http.serve(sse_server(lambda: pieces)) as server:
        config = tmp_path / "roost.toml"
        config.write_text(config_text(server.url, TOKEN, "json://127.0.0.1:9/", tmp_path, RULES))
        log_path = tmp_path / "daemon.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
        with log_path.open("wb") as log:
            process = await anyio.open_process(
                [sys.executable, "-m", "roost", "run", "--config", str(config)],
                stdout=log,
                stderr=log,
                env=env,
            )
        try:
            with anyio.fail_after(90):
                while log_path.read_text().count("unreadable field") < 1:
                    assert process.returncode is None, log_path.read_text()[-3000:]
                    await anyio.sleep(0.2)
            await anyio.sleep(2.0)  # the store saves the last home, events settle
            peak = peak_rss(process.pid)
            text = log_path.read_text()
        finally:
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                await process.wait()
    with capsys.disabled():
        print(f"\nroost run peak RSS over the largest allowed documents: {peak / 2**20:.0f} MiB")
    assert "document of 100006 objects and arrays exceeds the cap" in text  # 100,000 devices
    assert text.count("payload skipped") == 2  # the two largest allowed ones were read
    assert peak < MEMORY_MAX
