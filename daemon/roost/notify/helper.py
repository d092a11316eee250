"""The notification helper: apprise and its ~210 plugin modules (~25 MiB) in a process of
their own, so the daemon never loads them (roost/notify/helper_link.py starts and feeds it).

Run as a script (`python -I notifyhelper.py ALLOWED NEEDED`: comma-separated schemes, those
apprise may use and those the targets use), never as `roost.…`: importing the roost package
would load the whole daemon into this process too. So this file imports nothing of roost's.

apprise loads all its plugin modules on first use (~25 MiB); the helper loads only the
modules that serve the targets' schemes (found by reading the plugins' `protocol` lines),
through apprise's own `load_modules(path, name)`, and everything if that misses a scheme.

stdin, one JSON object a line: `{"id": n, "url": …, "title": …, "body": …, "type": …}`
sends one notification (`type` is apprise's notify type: info, warning, failure), and with
`"alarm": true` on a thread of its own (see `send_alarm`);
`{"id": n, "check": url}` only asks whether apprise accepts the URL;
`{"id": n, "ping": true}` is answered at once (the daemon's check that the helper lives).
stdout: `{"ready": true}` once apprise and its plugins are loaded, then `{"id": n, "ok": b}`
for each request, in the order they finish. The helper ends when stdin closes (it ignores
SIGTERM and SIGINT: the daemon decides when it ends).
"""

from __future__ import annotations

import json
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import anyio

APP_ID = "roost"


PROTOCOL = re.compile(r"^\s+(?:secure_)?protocol\s*=\s*(\([^)]*\)|\"[^\"]*\")", re.M)


def plugin_modules(plugins: Path, schemes: set[str]) -> set[str]:
    """The plugin modules (files or packages under apprise/plugins) that declare one of
    `schemes` as their protocol."""
    found = set()
    quoted = [f'"{scheme}"'.encode() for scheme in schemes]
    for source in plugins.rglob("*.py"):
        text = source.read_bytes()
        if not any(q in text for q in quoted):
            continue  # most files: no need to look closer
        module = source.relative_to(plugins).parts[0].removesuffix(".py")
        for declared in PROTOCOL.findall(text.decode("utf-8", errors="replace")):
            if schemes.intersection(re.findall(r"\"([^\"]+)\"", declared)):
                found.add(module)
    return found


def load_plugins(manager: Any, schemes: set[str]) -> None:
    """Only the modules for `schemes`: apprise's `load_modules` scans a directory that
    names just those (the imports themselves go to apprise.plugins as usual)."""
    plugins = Path(manager.module_path)
    with tempfile.TemporaryDirectory() as names:
        for module in plugin_modules(plugins, schemes):
            (Path(names) / f"{module}.py").touch()
        manager.load_modules(path=names, name=manager.module_name_prefix)
    if not all(scheme in manager for scheme in schemes):
        manager.load_modules()  # a plugin declared itself some other way: all of them


def prepare(allowed: list[str], needed: list[str]) -> Any:
    """apprise with the plugins for `needed` loaded and only `allowed` enabled (process-wide:
    apprise's manager is a singleton). The daemon's own fall-back uses it too."""
    import apprise

    manager_class: Any = apprise.NotificationManager
    manager = manager_class()
    load_plugins(manager, set(needed))
    manager.enable_only(*allowed)
    return apprise


# Threads for alarm pushes only: apprise sends everything through one small shared pool
# (cpu count + 4 workers), where a backlog for a target that hangs holds an alarm queued
# behind it for many seconds. An alarm never shares that pool.
ALARM_THREADS = anyio.CapacityLimiter(32)


async def send_alarm(apprise: Any, request: dict[str, Any]) -> bool:
    """One alarm push, sent by the target's plugin on a thread of the alarms' own."""
    plugin = apprise.Apprise.instantiate(
        str(request["url"]), asset=apprise.AppriseAsset(app_id=APP_ID)
    )
    if plugin is None:
        return False

    def send() -> bool:
        return bool(
            plugin.notify(
                body=str(request["body"]),
                title=str(request["title"]),
                notify_type=apprise.NotifyType(request["type"]),
            )
        )

    return await anyio.to_thread.run_sync(send, limiter=ALARM_THREADS, abandon_on_cancel=True)


class Helper:
    def __init__(self, allowed: list[str], needed: list[str]) -> None:
        self._apprise = prepare(allowed, needed)
        self._out = anyio.Lock()
        # The answers own stdout: anything a plugin prints goes to stderr instead.
        self._stdout, sys.stdout = sys.stdout, sys.stderr

    async def answer(self, message: dict[str, Any]) -> None:
        async with self._out:
            self._stdout.write(json.dumps(message) + "\n")
            self._stdout.flush()

    async def handle(self, request: dict[str, Any]) -> None:
        try:
            ok = await self._handle(request)
        except Exception as exc:  # one bad request must not end the helper
            print(f"notification helper: {type(exc).__name__}", file=sys.stderr)
            ok = False
        await self.answer({"id": request.get("id"), "ok": ok})

    async def _handle(self, request: dict[str, Any]) -> bool:
        if request.get("ping"):
            return True
        sender = self._apprise.Apprise(asset=self._apprise.AppriseAsset(app_id=APP_ID))
        if "check" in request:
            return bool(sender.add(str(request["check"])))
        if request.get("alarm"):
            return await send_alarm(self._apprise, request)
        if not sender.add(str(request["url"])):
            return False
        result = await sender.async_notify(
            body=str(request["body"]),
            title=str(request["title"]),
            notify_type=self._apprise.NotifyType(request["type"]),
        )
        return bool(result)


async def main(allowed: list[str], needed: list[str]) -> None:
    helper = Helper(allowed, needed)
    await helper.answer({"ready": True})
    stdin = anyio.wrap_file(sys.stdin)
    async with anyio.create_task_group() as tg:
        async for line in stdin:
            try:
                request = json.loads(line)
            except ValueError:
                continue  # not from the daemon: nothing to answer
            tg.start_soon(helper.handle, request)


if __name__ == "__main__":
    # The daemon ends the helper by closing its stdin, once what it has in hand is sent;
    # a stop signal sent to the whole service (systemd's control group, Ctrl-C) must not
    # cut a delivery short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    allowed, needed = ([s for s in arg.split(",") if s] for arg in sys.argv[1:3])
    anyio.run(main, allowed, needed)
