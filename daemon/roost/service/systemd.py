"""Living under systemd: readiness, status lines, the watchdog, and an orderly stop.

sd_notify is a datagram to `$NOTIFY_SOCKET`; no library is needed. `READY=1` goes out
once the settings, the store and the rules are loaded and every account has connected or
reported why not. `WATCHDOG=1` goes out only while the event loop runs *and* the engine
keeps consuming the bus: a stuck rule engine stops the pings and systemd restarts roost.

SIGHUP reloads the rule files (`RELOADING=1` … `READY=1`, as systemd 252 expects from a
`Type=notify` unit with `ExecReload=kill -HUP`). SIGTERM drains: the accounts stay
connected while the commands already queued or sent finish (their echoes still arrive),
for at most `daemon.drain_timeout_s`; a command still open then is recorded on the bus
and in the journal as dropped (never sent) or failed-unconfirmed (sent, not confirmed).
A notification being delivered finishes (the notifier shields it); one not yet picked
up stays in the durable outbox for the next start. Then the journal catches up, the
providers close, the state is flushed and the store closed: exit 0.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import UTC, datetime

import anyio
import structlog

from roost.core.bus import Bus
from roost.core.events import ConnectionState
from roost.host import listeners
from roost.service.collector import pace_collections, settle_memory
from roost.service.introspect import service_commands
from roost.service.observe import Observer
from roost.service.runtime import Runtime
from roost.web.link import web_commands

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 30.0
JOURNAL_CATCH_UP_S = 3.0


def sd_notify(*fields: str) -> bool:
    """Send `READY=1`, `STATUS=…`, `WATCHDOG=1`, … to systemd; False when not under it or
    when the socket cannot be reached (logged, rate-limited: never fatal)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        listeners.ERRORS.note("sd_notify failed", socket=address, error=str(exc))
        return False
    return True


def watchdog_interval_s() -> float | None:
    """How often to ping: half of WatchdogSec, if systemd asked this process for pings."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


def status_line(runtime: Runtime) -> str:
    accounts = runtime.state.accounts
    connected = sum(a.connection.up for a in accounts.values())
    line = f"{connected}/{len(runtime.providers)} accounts connected"
    line += f", {len(runtime.engine.rules)} rules"
    last = max((a.last_event_at for a in accounts.values() if a.last_event_at), default=None)
    if last is not None:
        line += f", last event {(datetime.now(UTC) - last).total_seconds():.0f} s ago"
    failed = [a.account for a in accounts.values() if a.connection is ConnectionState.AUTH_FAILED]
    if failed:
        line += f"; NOT AUTHORIZED: {', '.join(failed)}"
    degraded = [
        name for name in accounts if runtime.state.shown_state(name)[0] is ConnectionState.DEGRADED
    ]
    if degraded:
        line += f"; degraded: {', '.join(degraded)}"
    return line


async def wait_ready(runtime: Runtime, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until every account has connected or said why not, and the notification helper is
    up (bounded: a dead cloud must not keep systemd waiting; the status line says what is
    missing)."""
    deadline = anyio.current_time() + timeout_s
    with anyio.move_on_after(timeout_s):
        for provider in runtime.providers:
            await runtime.state.account(provider.account).settled.wait()
    if runtime.settings.notify.targets:  # a push goes out at once from here on
        await runtime.notify_helper.wait_up(max(0.0, deadline - anyio.current_time()))


class EngineWatch:
    """Is the engine keeping up? Stuck = work was waiting for it at the last look, and it
    has taken none since."""

    def __init__(self, runtime: Runtime) -> None:
        self._bus = runtime.bus
        self._taken, self._waiting = self._bus.backlog("engine")

    def healthy(self) -> bool:
        taken, waiting = self._bus.backlog("engine")
        stuck = self._waiting > 0 and taken == self._taken
        self._taken, self._waiting = taken, waiting
        return not stuck


async def supervise(runtime: Runtime) -> None:
    """Tell systemd when roost is ready and what it is doing; keep the watchdog fed."""
    started = time.monotonic()
    await wait_ready(runtime)
    sd_notify("READY=1", f"STATUS={status_line(runtime)}")
    log.info("ready", seconds=round(time.monotonic() - started, 3), status=status_line(runtime))
    settle_memory()
    async with anyio.create_task_group() as tg:
        tg.start_soon(pace_collections)
        await keep_systemd_told(runtime)


async def keep_systemd_told(runtime: Runtime) -> None:
    """The status line, and the watchdog ping while the engine keeps up."""
    interval = watchdog_interval_s()
    watch = EngineWatch(runtime)
    while True:
        await anyio.sleep(interval if interval else 5.0)
        fields = [f"STATUS={status_line(runtime)}"]
        if interval and watch.healthy():
            fields.append("WATCHDOG=1")
        elif interval:
            log.error("engine stalled; withholding the watchdog ping")
        sd_notify(*fields)


async def serve(runtime: Runtime) -> None:
    """Run the daemon until SIGTERM/SIGINT; SIGHUP reloads the rules."""
    observer = Observer(runtime.bus)
    commands = {**service_commands(runtime, observer), **web_commands(runtime)}
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run, commands)
        tg.start_soon(supervise, runtime)
        address = runtime.settings.metrics.address()
        if address is not None:
            from roost.service.metrics import serve_metrics

            tg.start_soon(serve_metrics, runtime, observer, address)
        if runtime.settings.web.address() is not None:
            from roost.web.server import serve_web  # the page & Jinja2 only when enabled

            tg.start_soon(serve_web, runtime, observer, runtime.settings.web)
        with anyio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await reload(runtime)
                    continue
                await drain(runtime, observer, signal.Signals(signum).name)
                tg.cancel_scope.cancel()
                return


async def reload(runtime: Runtime) -> None:
    sd_notify("RELOADING=1", "STATUS=reloading the rule files")
    if runtime.recorder is not None:
        runtime.recorder.reopen()  # logrotate's postrotate sends SIGHUP too
    started = time.monotonic()
    result = await runtime.reload_rules()
    log.info(
        "reloaded",
        rules=len(runtime.engine.rules),
        errors=len(result.errors),
        seconds=round(time.monotonic() - started, 3),
    )
    problems = f"; {len(result.errors)} rule file(s) not loaded" if result.errors else ""
    sd_notify("READY=1", f"STATUS={status_line(runtime)}{problems}")


async def drain(runtime: Runtime, observer: Observer, why: str) -> None:
    """Let in-flight commands finish (bounded), record the rest, let the journal catch up."""
    timeout_s = runtime.settings.daemon.drain_timeout_s
    open_now = len(observer.open)
    log.info("stopping", signal=why, commands_in_flight=open_now, drain_timeout_s=timeout_s)
    sd_notify("STOPPING=1", f"STATUS=stopping: {open_now} command(s) in flight")
    started = time.monotonic()
    left = await observer.drain(timeout_s)
    for record in left:
        log.warning(
            "command abandoned at stop",
            command=record.action,
            command_id=record.command,
            rule=record.rule,
            outcome=str(record.outcome),
            reason=record.reason,
        )
    if left:
        await runtime.bus.publish(left)
    await journal_caught_up(runtime.bus, JOURNAL_CATCH_UP_S)
    log.info(
        "drained",
        finished=open_now - len(left),
        abandoned=len(left),
        seconds=round(time.monotonic() - started, 3),
    )


async def journal_caught_up(bus: Bus, timeout_s: float) -> None:
    """Until the journal writer has taken every batch published so far (a write it has
    started finishes even when cancelled: the store's thread is never abandoned)."""
    with anyio.move_on_after(timeout_s):
        while bus.backlog("journal")[1] > 0:  # noqa: ASYNC110 (the bus signals no event)
            await anyio.sleep(0.02)
        await anyio.sleep(0.05)
