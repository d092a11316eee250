"""Where idle RSS goes: the daemon's imports, library by library, then roost area by area.

    .venv/bin/python bench/import_floor.py [--python PYTHON] [--page]

A fresh interpreter imports, stage by stage, what `roost run` (one `nest_wwn` account,
the example rules) has loaded once idle, and prints the RSS each stage adds. A module
goes to the first stage that pulls it in (httpx brings `http.cookiejar`, which brings
`urllib.request` and `email`). The libraries come first, so the roost rows are roost's
own code. The daemon's settings are plain dataclasses, validated by pydantic in a child
process (`config/load.py`), so pydantic is no stage of its own: where a roost row still
imports it (the TOML rule loader, until its model is plain too) that row shows it. `--page`
adds what the web page loads. Each
reading follows a collection and `malloc_trim`, as the daemon's once it is ready; a stage's
figure still moves by a few hundred KiB with where the allocator's arenas fill up.
Imports only: the running daemon adds ~1 MiB on top (bench/idle.py measures it). The
last line splits the interpreter's RSS into shared-library pages (clean, backed by the
files) and its own anonymous memory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OpenSSL (hashlib, ssl)", ("=leanimports", "hashlib", "ssl")),
    ("asyncio", ("asyncio",)),
    ("anyio", ("anyio", "anyio.streams.memory", "anyio.streams.tls", "anyio.streams.stapled")),
    ("httpx, httpcore, h11", ("httpx",)),
    ("one httpx client (trust store)", ("=client",)),
    ("structlog", ("structlog",)),
    ("croniter + dateutil (a cron rule)", ("croniter",)),
    ("sqlite3, tomllib, queue", ("sqlite3", "tomllib", "queue")),
    ("roost: the rule API (`import roost`)", ("roost",)),
    ("roost: settings + account models (plain)", ("roost.config.settings",)),
    ("roost: rule loader + TOML rule model", ("roost.engine.loader",)),
    (
        "roost: runtime, provider, service, cli",
        (
            "roost.cli.entry",
            "roost.host.listeners",
            "roost.host.lock",
            "roost.host.log",
            "roost.service.runtime",
            "roost.providers.nest_wwn.provider",
            "roost.service.systemd",
        ),
    ),
)
PAGE_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("page: Jinja2", ("jinja2",)),
    ("page: roost.web + host.httpserver", ("roost.web.server", "roost.web.app")),
)

CHILD = r"""
import ctypes, gc, importlib, importlib.util, json, sys
LIBC = ctypes.CDLL(None)
def rss():
    gc.collect()
    LIBC.malloc_trim(0)  # start-up's freed C heap handed back, as the daemon does once ready
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1048576
def split():
    file = anon = 0
    with open("/proc/self/smaps") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss_kib = int(line.split()[1])
            elif line.startswith("Anonymous:"):
                anon_kib = int(line.split()[1])
                anon += anon_kib
                file += rss_kib - anon_kib
    return file / 1024, anon / 1024
rows = [("interpreter", rss())]
for label, names in json.loads(sys.argv[1]):
    for name in names:
        if name == "=leanimports":  # its blocks, without importing the roost package
            spec = importlib.util.find_spec("roost")
            path = spec.submodule_search_locations[0] + "/leanimports.py"
            exec(compile(open(path).read(), path, "exec"), {})
        elif name == "=client":
            import httpx
            client = httpx.AsyncClient()
        else:
            importlib.import_module(name)
    rows.append((label, rss()))
pydantic = "pydantic" in sys.modules
out = {"rows": rows, "split": split(), "modules": len(sys.modules), "pydantic": pydantic}
print(json.dumps(out))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=sys.executable, help="the daemon's interpreter")
    parser.add_argument("--page", action="store_true", help="add the web page's imports")
    args = parser.parse_args()
    stages = STAGES + (PAGE_STAGES if args.page else ())
    import json

    out = subprocess.run(
        [args.python, "-c", CHILD, json.dumps(stages)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    result = json.loads(out)
    print(f"import floor of `roost run` ({args.python}); RSS in MiB")
    before = 0.0
    for label, rss in result["rows"]:
        print(f"  {label:<42} +{rss - before:5.2f}  = {rss:5.1f}")
        before = rss
    file, anon = result["split"]
    print(
        f"  {result['modules']} modules; of the {before:.1f} MiB: {file:.1f} shared-library "
        f"pages (file-backed), {anon:.1f} anonymous"
    )
    print(f"  pydantic imported: {'yes' if result['pydantic'] else 'no'}")


if __name__ == "__main__":
    main()
