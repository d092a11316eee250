"""The notification helper: apprise and its ~210 plugin modules (~25 MiB) in a process of
their own, so the daemon never loads them (roost/notifyproc.py starts and feeds it).

Run as a script (`python -I notifyhelper.py SCHEME,SCHEME,...`), never as `roost.…`:
importing the roost package would load the whole daemon into this process too. So this
file imports nothing of roost's.

stdin, one JSON object a line: `{"id": n, "url": …, "title": …, "body": …, "type": …}`
sends one notification (`type` is apprise's notify type: info, warning, failure);
`{"id": n, "check": url}` only asks whether apprise accepts the URL.
stdout: `{"ready": true}` once apprise and its plugins are loaded, then `{"id": n, "ok": b}`
for each request, in the order they finish. The helper ends when stdin closes.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio

APP_ID = "roost"


class Helper:
    def __init__(self, schemes: list[str]) -> None:
        import apprise

        manager: Any = apprise.NotificationManager
        manager().enable_only(*schemes)
        self._apprise = apprise
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
        sender = self._apprise.Apprise(asset=self._apprise.AppriseAsset(app_id=APP_ID))
        if "check" in request:
            return bool(sender.add(str(request["check"])))
        if not sender.add(str(request["url"])):
            return False
        result = await sender.async_notify(
            body=str(request["body"]),
            title=str(request["title"]),
            notify_type=self._apprise.NotifyType(request["type"]),
        )
        return bool(result)


async def main(schemes: list[str]) -> None:
    helper = Helper(schemes)
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
    anyio.run(main, [s for s in sys.argv[1].split(",") if s])
