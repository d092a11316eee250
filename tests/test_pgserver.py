"""The test PostgreSQL server does not outlive a test run that is killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pgserver import REQUIRED, unavailable

ROOT = Path(__file__).resolve().parent.parent

_HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.pgserver import PgServer, binaries
server = PgServer(binaries())
server.start()
print(server.port, server.dir, flush=True)
time.sleep(600)
"""


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_test_run_leaves_no_server_behind() -> None:
    reason = unavailable()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"REQUIRE_POSTGRES_TESTS=1 but {reason}")
        pytest.skip(reason)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(ROOT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        port_text, directory = holder.stdout.readline().split()
        port = int(port_text)
        assert _listening(port)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 60
        while (_listening(port) or Path(directory).exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _listening(port), "the server outlived the process that started it"
        assert not Path(directory).exists(), "the server's directory was left behind"
    finally:
        holder.kill()
