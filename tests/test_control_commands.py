"""The control socket's user commands against a real daemon subprocess: `roost status`,
`roost events` (recent and `--follow`, filtered), `roost outbox` and `roost notify-test`,
each as a person would run them (a `roost` subprocess)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from anyio.streams.text import TextReceiveStream

from tests.test_service_lifecycle import AWAY_ECO, STRUCTURE, clean_env, daemon, wait_for


@contextmanager
def interruptible_children() -> Iterator[None]:
    """Children started here take Ctrl-C (SIGINT) as from a terminal, even when this test
    runs with SIGINT ignored (a background job of a non-interactive shell: its children
    would inherit the ignoring, and the viewer would never stop)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # reset by exec
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.anyio
async def test_status_events_outbox_and_notify_test(tmp_path: Path) -> None:
    async with daemon(tmp_path, {"away.py": AWAY_ECO}) as bed:
        status = json.loads((await bed.roost("status", "--json")).stdout)
        assert [(a["name"], a["provider"], a["state"]) for a in status["accounts"]] == [
            ("home", "nest_wwn", "connected")
        ]
        assert status["rules"] == ["eco_when_away"]
        assert status["outbox"] == {"pending": 0, "dead": 0}
        assert status["uptime_s"] >= 0
        assert status["accounts"][0]["devices"] >= 4
        human = (await bed.roost("status")).stdout
        assert "home" in human
        assert "connected" in human
        assert "outbox: 0 pending, 0 dead" in human

        with interruptible_children():
            viewer = await anyio.open_process(
                [sys.executable, "-m", "roost", "events", "--follow", "--json", "--event",
                 "presence", "--config", str(bed.config)],
                env=clean_env(),
            )  # fmt: skip
        try:
            assert viewer.stderr is not None
            assert viewer.stdout is not None
            with anyio.fail_after(15):
                async for text in TextReceiveStream(viewer.stderr):
                    if "following live events" in text:
                        break
            bed.home.set_away(STRUCTURE, True)
            seen = ""
            with anyio.fail_after(15):
                async for text in TextReceiveStream(viewer.stdout):
                    seen += text
                    if seen.endswith("\n"):
                        break
            lines = [json.loads(line) for line in seen.splitlines()]
            assert [e["event"] for e in lines] == ["presence"]  # the filter held
            assert lines[0]["new"] == "away"
            assert lines[0]["account"] == "home"
        finally:
            viewer.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                await viewer.wait()

        await wait_for(lambda: bed.home.thermostat("thermostat-bedroom").mode == "eco")
        recent = await bed.roost("events", "--json", "--event", "command", "-n", "50")
        outcomes = [json.loads(line)["outcome"] for line in recent.stdout.splitlines()]
        assert "queued" in outcomes
        assert "sent" in outcomes
        by_id = (await bed.roost("events", "--device", "thermostat-bedroom", "-n", "100")).stdout
        assert by_id
        assert all("/thermostat-bedroom " in line for line in by_id.splitlines())
        name = bed.home.thermostat("thermostat-bedroom").name
        assert (await bed.roost("events", "--device", name, "-n", "100")).stdout == by_id

        outbox = await bed.roost("outbox", "--json")
        assert outbox.returncode == 0
        assert json.loads(outbox.stdout) == []

        test = await bed.roost("notify-test", "--json")
        answer = json.loads(test.stdout)
        assert test.returncode == 0
        assert answer["sent_by"] == "daemon"
        [result] = answer["results"]
        assert result["ok"]
        assert result["scheme"] == "json"
        assert re.fullmatch(r"[0-9a-f]{8}", result["hash"])
        assert bed.sink.url not in test.stdout  # never the URL itself
        await wait_for(lambda: any(p.get("title") == "roost: test notification"
                                   for p in bed.sink.received))  # fmt: skip
        human = (await bed.roost("notify-test")).stdout
        assert "ok     json://…#" in human
        assert "1/1 target(s)" in human

        # The viewer is gone; the daemon dropped its subscription and runs on.
        bed.home.set_away(STRUCTURE, False)
        assert json.loads((await bed.roost("status", "--json")).stdout)["accounts"]
        assert await bed.stop() == 0


def test_commands_say_when_no_daemon_runs(tmp_path: Path) -> None:
    config = tmp_path / "roost.toml"
    config.write_text(f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "roost", "status", "--config", str(config)],
        capture_output=True, text=True, env=clean_env(), check=False, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "cannot reach the daemon" in result.stderr
    outbox = subprocess.run(
        [sys.executable, "-m", "roost", "outbox", "--config", str(config)],
        capture_output=True, text=True, env=clean_env(), check=False, timeout=30,
    )  # fmt: skip
    assert outbox.returncode == 0
    assert "the outbox is empty" in outbox.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.anyio
async def test_the_metrics_endpoint(tmp_path: Path) -> None:
    port = free_port()
    extra = f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n'
    async with daemon(tmp_path, {"away.py": AWAY_ECO}, extra) as bed:
        bed.home.set_away(STRUCTURE, True)
        await wait_for(lambda: bed.home.thermostat("thermostat-bedroom").mode == "eco")
        async with httpx.AsyncClient() as client:
            text = ""
            with anyio.fail_after(15):
                while 'roost_commands_total{outcome="confirmed"} 2.0' not in text:
                    response = await client.get(f"http://127.0.0.1:{port}/metrics")
                    text = response.text
                    await anyio.sleep(0.1)
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert (await client.get(f"http://127.0.0.1:{port}/nope")).status_code == 404
        samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[0] != "#")
        assert float(samples['roost_rule_runs_total{rule="eco_when_away"}']) == 1
        assert float(samples['roost_account_connected{account="home"}']) == 1
        assert float(samples['roost_reconnects_total{account="home"}']) == 0
        assert float(samples['roost_events_total{event="presence"}']) >= 1
        assert 'roost_outbox_entries{state="pending"}' in samples
        assert "roost_notifications_total" in text
        assert float(samples['roost_stream_lag_seconds{account="home"}']) < 5
        assert await bed.stop() == 0


@pytest.mark.anyio
async def test_a_viewer_that_never_reads_does_not_hold_the_bus_up(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from roost.config.settings import DaemonSettings, Settings
    from roost.core.events import Started
    from roost.core.ids import new_id
    from roost.service.introspect import VIEWER_BUFFER, EventFilter, _live
    from roost.service.runtime import Runtime

    settings = Settings(daemon=DaemonSettings(state_dir=tmp_path, rules_dir=tmp_path))
    runtime = Runtime(settings, providers=[])
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)  # the daemon's own subscribers keep reading
        viewer = _live(runtime, EventFilter(runtime, {"event": ["started"]}))
        assert await viewer.__anext__() == {"following": True}  # subscribed now
        with anyio.fail_after(5):  # never blocks, though the viewer reads nothing
            for _ in range(VIEWER_BUFFER + 44):
                await runtime.bus.publish([Started(id=new_id(), at=datetime.now(UTC), account="")])
        assert await viewer.__anext__() == {"event": "_dropped", "count": 44}
        assert (await viewer.__anext__())["event"] == "started"
        await viewer.aclose()
        tg.cancel_scope.cancel()
