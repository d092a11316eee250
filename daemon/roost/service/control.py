"""The local control socket: `roost status`, `events`, `trace`, `reload`, `outbox` and
`notify-test` talk to the running daemon.

A Unix socket, owner-only (mode 0600 in a directory only the owner can enter when roost
creates it), and each connection's peer must be the daemon's own user or root. One JSON
request line in, one JSON answer line out; or, for a `Stream` answer (`events --follow`),
one JSON line per item until the client hangs up.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import SocketAttribute, SocketStream

from roost.core.codec import dumps
from roost.core.redact import redact_text
from roost.engine.engine import Engine
from roost.engine.loader import LoadResult
from roost.engine.unseen import Journal, never_ran
from roost.host import listeners

log = structlog.get_logger(__name__)

MAX_REQUEST = 64 * 1024
TIMEOUT_S = 10.0
LIMITS = listeners.Limits(
    max_connections=64, read_timeout_s=TIMEOUT_S, write_timeout_s=TIMEOUT_S, max_request=MAX_REQUEST
)
MISTAKES = listeners.RateLimitedLog()  # clients' mistakes, by kind (`total`: all so far)


@dataclass
class Stream:
    """An answer of many lines: each item of `items`, until it ends or the client leaves."""

    items: AsyncIterator[dict[str, Any]]


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | Stream]]


class ControlError(Exception):
    pass


async def serve(
    path: Path, handlers: dict[str, Handler], limits: listeners.Limits = LIMITS
) -> None:
    """Answer requests on `path` until cancelled; the socket file is removed on exit.

    Call it only while holding the state directory's instance lock: it removes a stale
    socket at `path`, which must never be another running instance's."""
    _make_room(path)
    # Bound under a temporary name, made owner-only, then renamed into place: the socket is
    # never visible at `path` with looser permissions, not even for a moment.
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.unlink(missing_ok=True)
    listener = await anyio.create_unix_listener(staging)
    os.chmod(staging, 0o600)
    os.rename(staging, path)
    log.info("control socket ready", path=str(path))
    try:
        async with listener:
            await listeners.serve(
                listener, lambda stream: _answer(stream, handlers, limits), "control", limits
            )
    finally:
        _remove(path)


def _make_room(path: Path) -> None:
    """An owner-only directory for a new socket; a stale socket file is removed."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    _remove(path)


def _remove(path: Path) -> None:
    """Remove our socket; anything else found there (a symlink, a file) is left alone."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket; not removing it")
    path.unlink(missing_ok=True)


_HUNG_UP = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ConnectionError,
)


def _mistake(kind: str, detail: str) -> None:
    """A client's mistake: one line (no traceback; a flood is one line a minute), counted."""
    MISTAKES.note(f"control: {kind}", detail=redact_text(detail)[:200])


async def _answer(
    stream: SocketStream, handlers: dict[str, Handler], limits: listeners.Limits
) -> None:
    """One request; a client error (hang-up, garbage, too long) ends only this connection
    and is a line in the log, never a traceback."""
    if not _peer_allowed(stream):
        await listeners.send(stream, _line({"error": "not allowed"}), limits)
        return
    try:
        line = await listeners.read_until(stream, b"\n", limits)
    except _HUNG_UP:
        _mistake("client hung up early", "before its request was whole")
        return
    except (TimeoutError, listeners.RequestTooLarge) as exc:
        _mistake("bad request", str(exc) or "not whole within the read deadline")
        answer: dict[str, Any] | Stream = {"error": redact_text(f"bad request: {exc}")}
    else:
        answer = await _handle(line, handlers)
    try:
        if isinstance(answer, Stream):
            await _stream(stream, answer, limits)
        else:
            await listeners.send(stream, _line(answer), limits)
    except _HUNG_UP:
        _mistake("client hung up early", "before its answer was sent")


async def _handle(line: bytes, handlers: dict[str, Handler]) -> dict[str, Any] | Stream:
    try:
        request = json.loads(line)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        _mistake("bad request", f"not JSON: {exc}")
        return {"error": redact_text(f"bad request: not JSON: {exc}")}
    if not isinstance(request, dict):
        _mistake("bad request", "not a JSON object")
        return {"error": "bad request: a request is a JSON object"}
    command = str(request.get("command"))
    handler = handlers.get(command)
    if handler is None:
        _mistake("unknown command", command)
        return {"error": redact_text(f"unknown command; known: {sorted(handlers)}")}
    try:
        with anyio.fail_after(TIMEOUT_S):
            return await handler(request)
    except (ValueError, TimeoutError) as exc:
        return {"error": redact_text(f"bad request: {exc}")}
    except Exception as exc:
        log.exception("control command failed")
        return {"error": redact_text(f"{type(exc).__name__}: {exc}")}


async def _stream(stream: SocketStream, answer: Stream, limits: listeners.Limits) -> None:
    """Send the items until they end or the client hangs up (noticed at once, even when
    no item is coming)."""
    async with anyio.create_task_group() as tg:

        async def until_hung_up() -> None:
            try:
                while await stream.receive():
                    pass
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(until_hung_up)
        try:
            async for item in answer.items:
                await listeners.send(stream, _line(item), limits)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, TimeoutError):
            pass
        finally:
            aclose = getattr(answer.items, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
        tg.cancel_scope.cancel()


def _peer_allowed(stream: SocketStream) -> bool:
    raw: socket.socket = stream.extra(SocketAttribute.raw_socket)
    if not hasattr(socket, "SO_PEERCRED"):
        return True  # not Linux: the socket's mode is the only gate
    creds = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    return uid in (0, os.getuid())


def _line(data: dict[str, Any]) -> bytes:
    return (dumps(data, default=str) + "\n").encode()


async def request(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the daemon at `path`; ControlError if it cannot be reached."""
    try:
        with anyio.fail_after(TIMEOUT_S):
            async with await anyio.connect_unix(path) as stream:
                await stream.send(_line(payload))
                data = b""
                while not data.endswith(b"\n"):
                    try:
                        data += await stream.receive()
                    except anyio.EndOfStream:
                        break
    except (OSError, TimeoutError, anyio.BrokenResourceError) as exc:
        raise ControlError(f"cannot reach the daemon at {path}: {exc}") from None
    answer = json.loads(data or b"{}")
    if not isinstance(answer, dict):
        raise ControlError("the daemon gave a malformed answer")
    if "error" in answer:
        raise ControlError(str(answer["error"]))
    return answer


async def follow(path: Path, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """Send one request and yield each answer line until the daemon ends the stream."""
    try:
        with anyio.fail_after(TIMEOUT_S):
            connection = await anyio.connect_unix(path)
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"cannot reach the daemon at {path}: {exc}") from None
    async with connection:
        await connection.send(_line(payload))
        buffer = b""
        while True:
            try:
                buffer += await connection.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            *lines, buffer = buffer.split(b"\n")
            for raw in lines:
                item = json.loads(raw)
                if isinstance(item, dict) and "error" in item:
                    raise ControlError(str(item["error"]))
                if isinstance(item, dict):
                    yield item


def rule_commands(
    engine: Engine, reload: Callable[[], Awaitable[LoadResult]], journal: Journal | None = None
) -> dict[str, Handler]:
    """The daemon's answers: `trace` (latest traces; for a rule that never ran, what the
    event journal saw) and `reload` (the rule files)."""

    async def trace(req: dict[str, Any]) -> dict[str, Any]:
        rule = req.get("rule")
        if rule is not None and rule not in engine.rules and rule not in engine.traces.rules():
            return {"error": f"no rule {rule!r}; rules: {', '.join(sorted(engine.rules))}"}
        limit = int(req.get("limit", 20))
        found = engine.traces.latest(None if rule is None else str(rule), limit)
        answer: dict[str, Any] = {"traces": [t.to_json() for t in found]}
        if not found and journal is not None and rule in engine.rules:
            answer["never"] = await never_ran(engine.rules[str(rule)], journal)
        return answer

    async def reload_rules(req: dict[str, Any]) -> dict[str, Any]:
        result = await reload()
        return {"rules": len(engine.rules), "errors": [str(e) for e in result.errors]}

    return {"trace": trace, "reload": reload_rules}
