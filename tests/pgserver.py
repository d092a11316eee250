"""A throwaway PostgreSQL server for the tests: initdb and pg_ctl in a temporary directory,
listening on 127.0.0.1 at a free port, run as an ordinary user (PostgreSQL refuses root).
No system service is used or needed. Absent binaries skip the tests that need the server,
unless REQUIRE_POSTGRES_TESTS=1 (set by .ci/run, which installs them): then they fail.

The server is stopped by a watcher process that holds the reading end of a pipe whose writing
end only the test process holds: however that process ends (finished, ^C, SIGKILL), the pipe
closes and the watcher stops the server and deletes its directory.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRED = os.environ.get("REQUIRE_POSTGRES_TESTS") == "1"  # set by .ci/run


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl (Debian keeps them off $PATH)."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(found[0]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scratch() -> str | None:
    """Memory (/dev/shm) where it has room, else the usual temporary directory: each test's
    database is a ~11 MB copy of the template, and deleting the ~1.5 GB a suite leaves from
    a disk mounted with discard took a minute at the end of the run."""
    try:
        shm = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if shm.f_bavail * shm.f_frsize >= 4 << 30 else None


class PgServer:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="roost-pg-", dir=_scratch()))
        self.port = _free_port()
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._names = itertools.count(1)
        self._watcher: subprocess.Popen[bytes] | None = None

    def _as_owner(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user, "group": pwd.getpwnam(self._user).pw_gid}

    def _run(self, *args: str) -> None:
        subprocess.run(
            args, check=True, capture_output=True, cwd=self.dir, timeout=120, **self._as_owner()
        )

    def start(self) -> None:
        data = self.dir / "data"
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(self.dir / "log"),
            "-o",
            options,
            "-w",
            "start",
        )
        self._watcher = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHER,
                str(self.bindir / "pg_ctl"),
                str(self.dir),
                self._user or "",
            ],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a ^C to the tests must not stop it before the server
        )

    def stop(self) -> None:
        """Close the watcher's pipe, as the end of this process would, and wait for it."""
        if self._watcher is None or self._watcher.stdin is None:
            shutil.rmtree(self.dir, ignore_errors=True)
            return
        self._watcher.stdin.close()
        self._watcher.wait(timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


# Runs in the watcher process: argv is pg_ctl, the server's directory, the user owning it ("" =
# this user). It blocks until its stdin reaches end of file, then stops the server.
_WATCHER = """
import pwd, shutil, subprocess, sys
pg_ctl, directory, user = sys.argv[1:4]
owner = {"user": user, "group": pwd.getpwnam(user).pw_gid} if user else {}
sys.stdin.buffer.read()
subprocess.run([pg_ctl, "-D", directory + "/data", "-m", "immediate", "stop"],
               capture_output=True, timeout=120, **owner)
shutil.rmtree(directory, ignore_errors=True)
"""


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def unavailable() -> str | None:
    """Why the tests cannot have a server here, or None."""
    if binaries() is None:
        return "PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it"
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        return "psycopg is not installed: pip install -e '.[dev]'"
    return None


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    reason = unavailable()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"REQUIRE_POSTGRES_TESTS=1 but {reason}")
        pytest.skip(reason)
    bindir = binaries()
    assert bindir is not None
    server = PgServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh database on the test server."""
    return pg_server.new_database()
