"""Living under systemd: readiness, status lines, the watchdog, and an orderly stop.

sd_notify is a datagram to `$NOTIFY_SOCKET`; no library is needed. `READY=1` goes out
once the settings, the store and the rules are loaded and every account has connected or
reported why not. `WATCHDOG=1` goes out only while the event loop runs *and* the engine
keeps consuming the bus: a stuck rule engine stops the pings and systemd restarts roost.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from datetime import UTC, datetime

import anyio
import structlog

from roost.events import ConnectionState
from roost.runtime import Runtime

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 30.0


def sd_notify(*fields: str) -> bool:
    """Send `READY=1`, `STATUS=…`, `WATCHDOG=1`, … to systemd; False when not under it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall("\n".join(fields).encode())
    return True


def watchdog_interval_s() -> float | None:
    """How often to ping: half of WatchdogSec, if systemd asked this process for pings."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


def status_line(runtime: Runtime) -> str:
    accounts = runtime.state.accounts
    connected = sum(a.connection is ConnectionState.CONNECTED for a in accounts.values())
    line = f"{connected}/{len(runtime.providers)} accounts connected"
    line += f", {len(runtime.engine.rules)} rules"
    last = max((a.last_event_at for a in accounts.values() if a.last_event_at), default=None)
    if last is not None:
        line += f", last event {(datetime.now(UTC) - last).total_seconds():.0f} s ago"
    failed = [a.account for a in accounts.values() if a.connection is ConnectionState.AUTH_FAILED]
    if failed:
        line += f"; NOT AUTHORIZED: {', '.join(failed)}"
    return line


async def wait_ready(runtime: Runtime, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until every account has connected or said why not (bounded: a dead cloud must not
    keep systemd waiting; the status line says what is missing)."""
    with anyio.move_on_after(timeout_s):
        for provider in runtime.providers:
            await runtime.state.account(provider.account).settled.wait()


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
    async with anyio.create_task_group() as tg:
        tg.start_soon(runtime.run)
        tg.start_soon(supervise, runtime)
        with anyio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    sd_notify("RELOADING=1")
                    runtime.load_rules()
                    sd_notify("READY=1", f"STATUS={status_line(runtime)}")
                    continue
                log.info("stopping", signal=signal.Signals(signum).name)
                sd_notify("STOPPING=1")
                tg.cancel_scope.cancel()
                return
