"""Idle footprint of `roost run` with one account, against issue 20's and 21's targets.

    .venv/bin/python bench/idle.py [--idle 20] [--settle 5] [--python PYTHON]

This process serves the WWN simulator (the demo home) and a push sink. For each row it
starts `python -m roost run` (the repo's example rules, one `nest_wwn` account, one apprise
target), waits for READY (the `ready` log line) and `--settle` seconds, then reads the
daemon's VmRSS and VmHWM from /proc, its CPU (user+system) over `--idle` seconds, and the
notification helper's RSS (apprise lives in that child process; PSS sums both fairly).
Rows: the page off; the page on (`[web] listen`) with one browser's worth of client: the
live events page and its two files loaded, then the page's SSE stream held open; the page
off with the account on https (a TLS front before the simulator, its self-signed
certificate added to certifi's bundle as `SSL_CERT_FILE`: a real cloud's trust store and
handshakes). Last, a CO alarm is raised and the time to the push at the sink is printed. The
machine's load (`uptime`) is printed beside the figures.

`--python` runs the daemon under another interpreter, e.g. a production venv's
(`python3 -m venv V && V/bin/pip install .`: no dev extras), which is what users run; the
dev venv has more packages installed, and some libraries import what they find.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import certifi
import httpx
from anyio.abc import ByteStream, Process
from anyio.streams.tls import TLSListener

from common import header, quiet_logging
from roost.simulator import nest_wwn
from roost.simulator.home import SimHome
from roost.simulator.sink import NotificationSink, serve_sink

REPO = Path(__file__).resolve().parent.parent
TARGET_RSS_MIB = 48.0
TARGET_CPU_PCT = 1.0  # "idle CPU low": a sleeping daemon
TARGET_PUSH_S = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def config_text(
    cloud: nest_wwn.NestWwnSimulator, sink: NotificationSink, tmp: Path, web: str, api_url: str
) -> str:
    return f"""
[daemon]
rules_dir = "{REPO / "rules"}"
state_dir = "{tmp / "state"}"
control_socket = "{tmp / "control.sock"}"

[log]
level = "info"
format = "json"

[[accounts]]
name = "home"
provider = "nest_wwn"
api_url = "{api_url}"
token = "{cloud.token}"

[[notify.targets]]
url = "{sink.url}"
{web}"""


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


async def wait_logged(log: Path, event: str, timeout_s: float = 30) -> None:
    with anyio.fail_after(timeout_s):
        while True:
            text = await anyio.Path(log).read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("{") and json.loads(line).get("event") == event:
                    return
            await anyio.sleep(0.05)


async def open_sse(stack: AsyncExitStack, port: int) -> None:
    """One browser's worth: the live events page and its files loaded, then a client on
    its stream, reading it."""
    client = await stack.enter_async_context(httpx.AsyncClient(timeout=None))
    for path in ("/live", "/static/live.js", "/static/roost.css"):
        page = await client.get(f"http://127.0.0.1:{port}{path}")
        assert page.status_code == 200, (path, page.status_code)
    request = client.build_request("GET", f"http://127.0.0.1:{port}/live/stream")
    response = await client.send(request, stream=True)
    stack.push_async_callback(response.aclose)
    assert response.status_code == 200, response.status_code

    async def read() -> None:
        async for _ in response.aiter_bytes():
            pass

    tg = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(tg.cancel_scope.cancel)
    tg.start_soon(read)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, and a trust store: certifi's bundle plus it."""
    key, cert, store = tmp / "key.pem", tmp / "cert.pem", tmp / "trust.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    store.write_text(Path(certifi.where()).read_text() + cert.read_text())
    return key, cert


@asynccontextmanager
async def tls_front(backend: str, key: Path, cert: Path) -> AsyncIterator[str]:
    """https://127.0.0.1:<port>, each connection piped to the plain-http `backend`."""
    target = httpx.URL(backend)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)

    async def pipe(source: ByteStream, sink: ByteStream) -> None:
        try:
            async for chunk in source:
                await sink.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
            pass
        finally:
            await sink.aclose()

    async def handle(client: ByteStream) -> None:
        async with client:
            upstream = await anyio.connect_tcp(target.host, target.port or 80)
            async with upstream, anyio.create_task_group() as tg:
                tg.start_soon(pipe, client, upstream)
                tg.start_soon(pipe, upstream, client)

    listener = TLSListener(tcp, server, standard_compatible=False)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield f"https://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


async def measure(
    label: str, web: bool, idle_s: float, settle_s: float, push: bool, python: str, tls: bool
) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        port = free_port()
        section = f'\n[web]\nlisten = "127.0.0.1:{port}"\n' if web else ""
        async with (
            nest_wwn.serve(SimHome.demo()) as cloud,
            serve_sink() as sink,
            AsyncExitStack() as stack,
        ):
            env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
            api_url = cloud.url
            if tls:
                key, cert = self_signed(tmp)
                api_url = await stack.enter_async_context(tls_front(cloud.url, key, cert))
                env["SSL_CERT_FILE"] = str(tmp / "trust.pem")
            config = tmp / "roost.toml"
            config.write_text(config_text(cloud, sink, tmp, section, api_url))
            log = tmp / "daemon.log"
            with log.open("wb") as out:
                process = await anyio.open_process(
                    [python, "-m", "roost", "run", "--config", str(config)],
                    stdout=out,
                    stderr=out,
                    env=env,
                )
            try:
                await wait_logged(log, "ready")
                if web:
                    await open_sse(stack, port)
                await anyio.sleep(settle_s)
                report(label, process, idle_s, await idle_cpu(process, idle_s))
                if push:
                    await first_push(cloud, sink)
            finally:
                await stop(process)


async def idle_cpu(process: Process, idle_s: float) -> tuple[float, float]:
    """CPU % of the daemon, and of its notification helper, over the window."""
    helpers = children(process.pid)
    before = cpu_seconds(process.pid), sum(cpu_seconds(pid) for pid in helpers)
    await anyio.sleep(idle_s)
    after = cpu_seconds(process.pid), sum(cpu_seconds(pid) for pid in helpers)
    return (after[0] - before[0]) / idle_s * 100, (after[1] - before[1]) / idle_s * 100


def report(label: str, process: Process, idle_s: float, cpus: tuple[float, float]) -> None:
    cpu, helper_cpu = cpus
    rss = status_kib(process.pid, "VmRSS") / 1024
    hwm = status_kib(process.pid, "VmHWM") / 1024
    helpers = children(process.pid)
    helper_rss = sum(status_kib(pid, "VmRSS") for pid in helpers) / 1024
    pss = (pss_kib(process.pid) + sum(pss_kib(pid) for pid in helpers)) / 1024
    verdict = "ok" if rss <= TARGET_RSS_MIB else "MISSED"
    print(
        f"  {label:<34} RSS {rss:5.1f} MiB (target ≤ {TARGET_RSS_MIB:.0f}: {verdict}), "
        f"peak {hwm:5.1f}; CPU {cpu:4.2f} % over {idle_s:.0f} s "
        f"({'ok' if cpu <= TARGET_CPU_PCT else 'MISSED'}); "
        f"helper RSS {helper_rss:4.1f} MiB, CPU {helper_cpu:4.2f} %; "
        f"PSS daemon+helper {pss:5.1f} MiB",
        flush=True,
    )


async def first_push(cloud: nest_wwn.NestWwnSimulator, sink: NotificationSink) -> None:
    before = len(sink.received)
    raised = time.monotonic()
    cloud.home.set_co("alarm-hallway", "emergency")
    with anyio.fail_after(10):
        await sink.wait_for(before + 1)
    latency = time.monotonic() - raised
    verdict = "ok" if latency <= TARGET_PUSH_S else "MISSED"
    print(f"  first alarm push {latency * 1000:6.0f} ms after the event (target ≤ 1 s: {verdict})")


async def stop(process: Process) -> None:
    if process.returncode is None:
        process.terminate()
    with anyio.move_on_after(15):
        await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()


async def main(idle_s: float, settle_s: float, python: str) -> None:
    quiet_logging()
    header("idle RSS and CPU", "`roost run`, one WWN account, one apprise target")
    print(f"   daemon's interpreter: {python}")
    print(f"   {uptime()}")
    await measure("page off", False, idle_s, settle_s, True, python, False)
    await measure("page on, /live loaded + its SSE", True, idle_s, settle_s, False, python, False)
    await measure("page off, account on https", False, idle_s, settle_s, True, python, True)
    print(f"   {uptime()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--python", default=sys.executable, help="the daemon's interpreter")
    args = parser.parse_args()
    anyio.run(main, args.idle, args.settle, args.python)
