"""The daemon's side of the notification helper (roost/notify/helper.py): apprise and its
plugins live in a child process, fed one JSON line per delivery over a pipe, so the daemon
stays small (apprise loaded in the daemon is ~25 MiB of its idle RSS).

The outbox stays the one record of what was sent: a delivery counts once the helper
confirms it, so a helper killed mid-delivery costs a retry with the same dedupe key, never
a notification. A helper that dies is started again with back-off. Alarms fail open: when
the helper is down (between restarts, or did not come up within `START_WAIT_S`), dies
while an alarm is on its way, or does not answer it within `ALARM_REPLY_S`, the alarm goes
out through apprise in the daemon itself. A helper that holds a request past `UNANSWERED_S`
and does not answer a ping is hung: it is killed, and the next one sends what it held.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import structlog
from anyio.abc import ByteSendStream, Process, TaskGroup
from anyio.streams.buffered import BufferedByteReceiveStream

from roost.notify import helper as notifyhelper
from roost.notify.helper import prepare
from roost.notify.notifier import DELIVERY_LIMIT_S, Notification, Target, _send, request_for
from roost.providers.backoff import Backoff

log = structlog.get_logger(__name__)

HELPER = Path(notifyhelper.__file__)  # run as a script: see there
RESTART_S = (1.0, 60.0)
HEALTHY_S = 60.0  # a helper up this long starts its back-off afresh when it dies
# A push while the helper is starting waits for it (its start is ~0.5 s of CPU, as long as
# loading apprise here would take); only a helper that does not come up is failed over.
START_WAIT_S = 5.0
MAX_LINE = 64 * 1024
# An alarm the helper took but has not answered within this long (it may be hung: stopped,
# swapped out, a plugin deadlocked) goes out from the daemon as well. A helper that is just
# slow makes a duplicate with the same dedupe key; a hung one would hold the alarm forever.
ALARM_REPLY_S = 3.0
# A helper with a request unanswered this long is asked whether it lives (a ping, answered
# at once by a helper that is not hung, however slow a target is); one that does not answer
# the ping within PING_S is killed and another started. Ordinary pushes wait for the helper
# (the outbox keeps them): without this, a hung one would hold them as long as it hangs.
UNANSWERED_S = 5.0
PING_S = 5.0


class HelperGone(Exception):
    """The helper is not up, or died before it answered."""


class _Reply:
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.ok = False
        self.gone = False
        self.sent_at = anyio.current_time()


class NotifyHelper:
    def __init__(self, targets: Sequence[Target], schemes: Sequence[str]) -> None:
        self._targets = list(targets)
        self._schemes = list(schemes)
        self._needed = sorted({target.scheme for target in targets})
        self._stdin: ByteSendStream | None = None
        self._pending: dict[int, _Reply] = {}
        self._ids = itertools.count(1)
        self._write = anyio.Lock()
        self._up = anyio.Event()
        self._starting = True  # from construction: run() starts it with the daemon
        self._settled = anyio.Event()  # this start came up or ended
        self._in_process_ready = False
        self._asked = anyio.Event()  # set when a request goes to the helper
        self.pid: int | None = None

    async def wait_up(self, timeout_s: float) -> bool:
        with anyio.move_on_after(timeout_s):
            await self._up.wait()
        return self._up.is_set()

    async def send(self, target: Target, notification: Notification) -> bool:
        """Deliver through the helper; an alarm the helper cannot take goes out from here."""
        alarm = notification.must_go_out
        try:
            return await self._ask(
                {**request_for(target, notification), "alarm": alarm},
                reply_within_s=ALARM_REPLY_S if alarm else math.inf,
            )
        except HelperGone:
            if not notification.must_go_out:
                return False  # stays pending in the outbox; retried once the helper is back
        log.warning("notification helper unavailable; alarm sent by the daemon itself")
        return await self._send_in_process(target, notification)

    async def _send_in_process(self, target: Target, notification: Notification) -> bool:
        if not self._in_process_ready:
            # Loading apprise (the targets' plugins only) takes CPU: off the event loop.
            await anyio.to_thread.run_sync(prepare, self._schemes, self._needed)
            self._in_process_ready = True
        return await _send(target, notification)

    async def _ask(self, request: dict[str, Any], reply_within_s: float = math.inf) -> bool:
        if self._stdin is None and self._starting:
            with anyio.move_on_after(START_WAIT_S):
                await self._settled.wait()
        stdin = self._stdin
        if stdin is None:
            raise HelperGone
        number, reply = next(self._ids), _Reply()
        self._pending[number] = reply  # until the helper answers it, or is gone
        self._asked.set()
        line = json.dumps({"id": number, **request}) + "\n"
        try:
            async with self._write:
                await stdin.send(line.encode())
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self._pending.pop(number, None)
            raise HelperGone from None
        with anyio.move_on_after(reply_within_s):
            await reply.done.wait()
        if not reply.done.is_set():  # alive but not answering: hung, as far as we can tell
            raise HelperGone  # still pending: `_watch` judges the helper by it
        if reply.gone:
            raise HelperGone
        return reply.ok

    async def run(self) -> None:
        """Keep the helper running until cancelled."""
        backoff = Backoff(*RESTART_S)
        async with anyio.create_task_group() as tg:
            while True:
                started = anyio.current_time()
                try:
                    await self._run_once(tg)
                except OSError as exc:
                    log.error("notification helper could not start", error=str(exc))
                if anyio.current_time() - started > HEALTHY_S:
                    backoff.reset()
                await anyio.sleep(max(backoff.next(), RESTART_S[0] / 4))

    async def _run_once(self, tg: TaskGroup) -> None:
        schemes = [",".join(self._schemes), ",".join(self._needed)]
        command = [sys.executable, "-I", str(HELPER), *schemes]
        self._starting, self._settled = True, anyio.Event()
        try:
            process = await anyio.open_process(command, stderr=None)
        except OSError:
            self._starting = False
            self._settled.set()
            raise
        self.pid = process.pid
        log.info("notification helper started", pid=process.pid)
        assert process.stdout is not None
        replies = BufferedByteReceiveStream(process.stdout)
        try:
            async with anyio.create_task_group() as watching:
                watching.start_soon(self._watch, process)
                await self._read(replies, process, tg)
                watching.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._wind_down(replies, process)
        log.warning("notification helper exited", code=process.returncode)

    async def _read(
        self, replies: BufferedByteReceiveStream, process: Process, tg: TaskGroup
    ) -> None:
        while (message := await _next_message(replies)) is not None:
            if message.get("ready"):
                self._stdin = process.stdin
                self._up.set()
                self._starting = False
                self._settled.set()
                tg.start_soon(self._check_targets)
            else:
                self._resolve(message)

    async def _watch(self, process: Process) -> None:
        """Kill the helper when a request has waited `UNANSWERED_S` for its answer and the
        helper does not answer a ping within `PING_S` either: it is hung (stopped, a
        deadlocked plugin). Its end fails what it holds; the outbox retries those."""
        while True:
            if not self._pending:
                self._asked = anyio.Event()
                await self._asked.wait()
            oldest = min(reply.sent_at for reply in self._pending.values())
            await anyio.sleep(max(0.0, oldest + UNANSWERED_S - anyio.current_time()))
            if not any(r.sent_at <= oldest for r in self._pending.values()):
                continue  # answered meanwhile
            try:
                if await self._ask({"ping": True}, reply_within_s=PING_S):
                    await anyio.sleep(UNANSWERED_S)  # alive: a target is slow; ask again later
                    continue
            except HelperGone:
                pass
            if process.returncode is None:
                log.warning(
                    "notification helper does not answer; killed",
                    pid=process.pid,
                    waited_s=round(anyio.current_time() - oldest, 1),
                )
                process.kill()
            return

    def _resolve(self, message: dict[str, Any]) -> None:
        reply = self._pending.pop(int(message.get("id", -1)), None)
        if reply is not None:
            reply.ok = bool(message.get("ok"))
            reply.done.set()

    async def _wind_down(self, replies: BufferedByteReceiveStream, process: Process) -> None:
        """Take no more; on a stop, let what the helper has in hand go out (bounded), then
        fail the rest: the outbox still has them as pending."""
        self._stdin, self._up, self._starting = None, anyio.Event(), False
        self._settled.set()
        assert process.stdin is not None
        with anyio.move_on_after(DELIVERY_LIMIT_S):
            with suppress(OSError, anyio.BrokenResourceError):
                await process.stdin.aclose()  # the helper ends once its deliveries are done
            while self._pending and (message := await _next_message(replies)) is not None:
                self._resolve(message)
        if process.returncode is None:
            process.kill()
        await process.wait()
        for reply in self._pending.values():
            reply.gone = True
            reply.done.set()
        self._pending.clear()

    async def _check_targets(self) -> None:
        """apprise's own check of each target URL (the settings checked the scheme)."""
        for index, target in enumerate(self._targets):
            try:
                accepted = await self._ask({"check": target.url})
            except HelperGone:
                return  # checked again by the next helper
            if not accepted:
                log.error(
                    "notify target is invalid or not allowed; nothing can be sent to it",
                    target=index,
                    scheme=target.scheme,
                )


async def _next_message(replies: BufferedByteReceiveStream) -> dict[str, Any] | None:
    """The helper's next line, or None once it has closed its end."""
    try:
        line = await replies.receive_until(b"\n", MAX_LINE)
    except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound):
        return None
    try:
        message: dict[str, Any] = json.loads(line)
    except ValueError:
        return {}  # not the helper's (answers nothing)
    return message
