"""The web page's test bed: a simulated Nest cloud and a push sink in the test, `roost run`
as a real subprocess with `[web]` enabled, and (for the browser tests) Debian's Chromium
driven by Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
from anyio.abc import Process

from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink

CHROMIUM = Path(os.environ.get("ROOST_TEST_CHROMIUM", "/usr/bin/chromium"))
# The flags that work on these machines (no GPU, closed network, root).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).parent.parent / "_output" / "web"

HOSTILE = (
    '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
    "\u202egnp.exe"  # a right-to-left override: shows as "exe.png" where it acts
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


def config(
    cloud: nest_wwn.NestWwnSimulator, sink: str, state: Path, rules: Path, port: int, web: str
) -> str:
    return f"""
[daemon]
rules_dir = "{rules}"
state_dir = "{state}"

[log]
level = "info"
format = "json"

[[accounts]]
name = "home"
provider = "nest_wwn"
api_url = "{cloud.url}"
token = "{cloud.token}"

[[notify.targets]]
url = "{sink}"

[web]
listen = "127.0.0.1:{port}"
{web}
"""


@dataclass
class Bed:
    home: SimHome
    sink: NotificationSink
    config: Path
    state: Path
    process: Process
    base: str
    log: Path

    async def roost(self, *args: str) -> tuple[int, str, str]:
        with anyio.fail_after(20):
            done = await anyio.run_process(
                [sys.executable, "-m", "roost", *args, "--config", str(self.config)],
                check=False,
                env=clean_env(),
            )
        return done.returncode, done.stdout.decode(), done.stderr.decode()


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("ROOST_", "NOTIFY_"))}


async def wait_for_page(base: str, process: Process, timeout_s: float = 30.0) -> None:
    with anyio.fail_after(timeout_s):
        async with httpx.AsyncClient() as client:
            while True:
                assert process.returncode is None, "roost run exited"
                try:
                    if (await client.get(base + "/")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)


@asynccontextmanager
async def running(
    tmp_path: Path, rules: dict[str, str], home: SimHome | None = None, web: str = ""
) -> AsyncIterator[Bed]:
    home = home or SimHome.demo()
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in rules.items():
        (rules_dir / name).write_text(text)
    state = tmp_path / "state"
    port = free_port()
    async with nest_wwn.serve(home, keepalive_s=0.5) as cloud, serve_sink() as sink:
        path = tmp_path / "roost.toml"
        path.write_text(config(cloud, sink.url, state, rules_dir, port, web))
        log = tmp_path / "daemon.log"
        with log.open("ab") as out:
            process = await anyio.open_process(
                [sys.executable, "-m", "roost", "run", "--config", str(path)],
                env=clean_env(),
                stdout=out,
                stderr=out,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_for_page(base, process)
            yield Bed(home, sink, path, state, process, base, log)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.terminate()
                    with anyio.move_on_after(15):
                        await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
