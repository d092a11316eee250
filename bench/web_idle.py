"""The web page's idle cost: `roost run` (one simulated WWN account, the example rules)
without the page, with it, and with it and one Chromium on the live events page; idle
RSS and idle CPU of the daemon process for each (issue 20's targets: RSS ≤ 48 MiB).

    .venv/bin/python bench/web_idle.py [--idle 30]

Needs Debian's chromium and playwright for the third row (else it is left out).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent.parent))

from tests.web.bed import (
    CHROMIUM,
    CHROMIUM_ARGS,
    chromium_missing,
    clean_env,
    free_port,
    wait_for_page,
)

from roost.simulator import nest_wwn
from roost.simulator.home import SimHome

RULES = Path(__file__).parent.parent / "rules"
TICK = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


async def measure(web: bool, browser: bool, idle_s: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        state, port = Path(tmp) / "state", free_port()
        async with nest_wwn.serve(SimHome.demo()) as cloud, AsyncExitStack() as stack:
            config = Path(tmp) / "roost.toml"
            config.write_text(
                f'[daemon]\nrules_dir = "{RULES}"\nstate_dir = "{state}"\n'
                f'[log]\nformat = "json"\nlevel = "warning"\n'
                f'[[accounts]]\nname = "home"\nprovider = "nest_wwn"\n'
                f'api_url = "{cloud.url}"\ntoken = "{cloud.token}"\n'
                + (f'[web]\nlisten = "127.0.0.1:{port}"\n' if web else "")
            )
            process = await anyio.open_process(
                [sys.executable, "-m", "roost", "run", "--config", str(config)],
                env=clean_env(),
                stdout=None,
                stderr=None,
            )
            try:
                base = f"http://127.0.0.1:{port}"
                if web:
                    await wait_for_page(base, process)
                else:
                    await anyio.sleep(3)
                if browser:
                    from playwright.async_api import async_playwright

                    p = await stack.enter_async_context(async_playwright())
                    launched = await p.chromium.launch(
                        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                    )
                    stack.push_async_callback(launched.close)
                    page = await launched.new_page()
                    await page.goto(base + "/live")
                    await page.locator("#stream-state", has_text="live").wait_for()
                await anyio.sleep(5)  # settle: start-up work, gc.freeze
                cpu0 = cpu_s(process.pid)
                await anyio.sleep(idle_s)
                cpu = (cpu_s(process.pid) - cpu0) / idle_s * 100
                return rss_mib(process.pid), cpu
            finally:
                process.terminate()
                await process.wait()


async def main(idle_s: float) -> None:
    rows = [("page off", False, False), ("page on", True, False)]
    if chromium_missing() is None:
        rows.append(("page on, one browser on /live", True, True))
    print(f"idle RSS and CPU of `roost run`, one WWN account, {idle_s:.0f} s idle")
    base_rss = None
    for label, web, browser in rows:
        rss, cpu = await measure(web, browser, idle_s)
        base_rss = rss if base_rss is None else base_rss
        print(f"  {label:<32} RSS {rss:6.1f} MiB (+{rss - base_rss:4.1f})   CPU {cpu:5.2f} %")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=30.0)
    anyio.run(main, parser.parse_args().idle)
