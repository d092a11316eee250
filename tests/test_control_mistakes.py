"""A control-socket client's mistakes (bad JSON, JSON nested past Python's recursion limit,
not an object, an unknown command, a hang-up before its request is whole) are answered
where the client still listens, logged as one clear line without a traceback and counted;
the socket goes on answering. Over a real Unix socket, the control module's own server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from roost.host.listeners import RateLimitedLog
from roost.service import control

pytestmark = pytest.mark.anyio

MISTAKES = [
    (b"{not json\n", "control: bad request"),
    (b"[" * 60000 + b"\n", "control: bad request"),  # a RecursionError in json.loads
    (b"\xff\n", "control: bad request"),
    (b"[1]\n", "control: bad request"),
    (b'{"command": "nope"}\n', "control: unknown command"),
    (b'{"command": "sta', "control: client hung up early"),  # and hangs up
]


async def _status(request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True}


async def test_client_mistakes_are_one_line_each_without_a_traceback_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mistakes = RateLimitedLog()
    monkeypatch.setattr(control, "MISTAKES", mistakes, raising=False)
    path = tmp_path / "control.sock"
    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(control.serve, path, {"status": _status})
            with anyio.fail_after(5):
                while not path.exists():
                    await anyio.sleep(0.01)
            for raw, _ in MISTAKES:
                async with await anyio.connect_unix(path) as stream:
                    await stream.send(raw)
                    if raw.endswith(b"\n"):
                        with anyio.fail_after(5):
                            answer = await stream.receive()
                        assert b'"error"' in answer, answer
            with anyio.fail_after(5):
                while sum(mistakes.total.values()) < len(MISTAKES):
                    await anyio.sleep(0.01)
            assert await control.request(path, {"command": "status"}) == {"ok": True}
            tg.cancel_scope.cancel()
    assert not [line for line in logs if line.get("exc_info")], logs
    for kind in {kind for _, kind in MISTAKES}:
        assert mistakes.total[kind] == sum(k == kind for _, k in MISTAKES), kind
        assert [line for line in logs if line["event"] == kind], kind  # its one line
