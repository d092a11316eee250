"""README's "Running a fleet" works as written: its `[store]`/`[cluster]` settings, the
database password as the systemd credential its drop-in loads, the worker name its drop-in
sets, and its `roost cluster` / `roost status` / `roost fleet send` / `roost fleet status`
lines, run against two `roost run` workers and a real PostgreSQL that checks the password
(scram-sha-256 for the README's role and database). Only the machine-specific parts are
replaced: the database host, the config path, the event's times and the home's name."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import psycopg
import pytest

from roost.simulator import http
from tests.cluster.fleet import Homes, stop, token
from tests.pgserver import PgServer

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## Running a fleet") :]
SECTION = SECTION[: SECTION.index("\n## ", 1)]


def block(language: str, containing: str) -> str:
    found = [b for b in re.findall(rf"```{language}\n(.*?)```", SECTION, re.DOTALL)]
    [text] = [b for b in found if containing in b]
    return str(text)


def readme_commands(prefix: str) -> list[list[str]]:
    """The README's `roost …` lines starting with `prefix`, comments off, continuations joined."""
    text = block("sh", "roost fleet send").replace("\\\n", " ")
    lines = [shlex.split(line, comments=True) for line in text.splitlines()]
    return [words for words in lines if " ".join(words).startswith(prefix)]


def drop_in() -> tuple[str, str, str]:
    """(the credential's name, the worker variable, its value's template) from the drop-in."""
    text = block("ini", "LoadCredential=")
    credential = re.search(r"LoadCredential=(\w+):", text)
    variable = re.search(r"Environment=(\w+)=(\S+)", text)
    assert credential, text
    assert variable, text
    return credential.group(1), variable.group(1), variable.group(2)


def password() -> str:
    match = re.search(r"printf '%s\\n' '([^']+)' \| sudo install", SECTION)
    assert match, "the README's credential line"
    return match.group(1)


def readme_database(pg_server: PgServer, secret: str) -> str:
    """The README's role and database (`createuser --pwprompt roost`, `createdb --owner roost
    roost`), reached with a password: the server checks it for them (scram-sha-256)."""
    name = f"roost_{os.getpid()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'roost'").fetchone() is None:
            conn.execute(f"CREATE ROLE roost LOGIN PASSWORD '{secret}'")
        conn.execute(f"CREATE DATABASE {name} OWNER roost")
        [hba_file] = conn.execute("SHOW hba_file").fetchall()
        hba = Path(str(hba_file[0]))
        rule = f"host {name} roost 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())  # (first match wins: before the trust lines)
        conn.execute("SELECT pg_reload_conf()")
    return name


def settings_file(directory: Path, name: str, store: str, server_url: str) -> Path:
    state = directory / name
    state.mkdir()
    (directory / "rules").mkdir(exist_ok=True)
    accounts = "".join(
        f'\n[[accounts]]\nname = "h{i}"\nprovider = "nest_wwn"\napi_url = "{server_url}/h{i}"\n'
        f'token = "{token(i)}"\ntags = {tags}\n'
        for i, tags in enumerate(('["enrolled"]', "[]"))
    )
    path = directory / f"{name}.toml"
    path.write_text(
        f'[daemon]\nrules_dir = "{directory / "rules"}"\nstate_dir = "{state}"\n'
        f'control_socket = "{state}/control.sock"\n\n{store}\n{accounts}'
    )
    return path


def roost(args: list[str], config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [str(config) if a == "/etc/roost/roost.toml" else a for a in args]
    assert args[0] == "roost"
    return subprocess.run(
        [sys.executable, "-m", "roost", *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def start(config: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "roost", "run", "--config", str(config)],
            stdout=out,
            stderr=out,
            env=env,
        )


def event_times() -> tuple[str, str]:
    """`--from`/`--until` as the README writes them (HH:MM today), for an event open now."""
    now = datetime.now().astimezone()
    until = now + timedelta(minutes=30)
    if until.date() != now.date():  # (HH:MM means today: so close to midnight, ISO instead)
        return now.isoformat(timespec="minutes"), until.isoformat(timespec="minutes")
    return now.strftime("%H:%M"), until.strftime("%H:%M")


async def test_the_readme_fleet_section_works_as_written(
    pg_server: PgServer, tmp_path: Path
) -> None:
    secret = password()
    database = readme_database(pg_server, secret)
    store = block("ini", "[store]").replace(
        "db.example.org/roost", f"127.0.0.1:{pg_server.port}/{database}"
    )
    credential, variable, template = drop_in()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / credential).write_text(secret + "\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    base["CREDENTIALS_DIRECTORY"] = str(credentials)
    host = socket.gethostname()
    homes = Homes(2, keepalive_s=1)
    cooling = homes.sims[0].home.thermostat("t-0")
    cooling.can_cool, cooling.mode, cooling.target_c = True, "cool", 24.0
    procs: list[subprocess.Popen[bytes]] = []
    async with http.serve(homes.handle) as server:
        for sim in homes.sims:
            sim._server = server
        configs = []
        for instance in ("1", "2"):
            config = settings_file(tmp_path, f"worker{instance}", store, server.url)
            configs.append(config)
            env = base | {variable: template.replace("%H", host).replace("%i", instance)}
            procs.append(start(config, tmp_path / f"worker{instance}.log", env))
        try:
            with anyio.fail_after(90):
                while homes.connected() < 2:
                    await anyio.sleep(0.2)
            await anyio.sleep(1)  # (the first snapshots saved: --structure reads them)
            [cluster] = readme_commands("roost cluster")
            view = await anyio.to_thread.run_sync(roost, [*cluster, "--json"], configs[0], base)
            assert view.returncode == 0, view.stderr
            workers = {w["worker"] for w in json.loads(view.stdout)["workers"]}
            assert workers == {f"{host}-1", f"{host}-2"}
            [status] = readme_commands("roost status")
            shown = await anyio.to_thread.run_sync(roost, status, configs[0], base)
            assert shown.returncode == 0, shown.stderr
            assert f"{host}-1" in shown.stdout
            assert f"{host}-2" in shown.stdout

            opened, closes = event_times()
            demand, by_structure = readme_commands("roost fleet send")
            demand = [{"16:00": opened, "18:00": closes}.get(a, a) for a in demand]
            sent = await anyio.to_thread.run_sync(roost, demand, configs[0], base)
            assert sent.returncode == 0, sent.stderr
            fleet_id = sent.stdout.split()[2].rstrip(":")
            by_structure = [a.replace("Home 12", "Home 1") for a in by_structure]
            sent = await anyio.to_thread.run_sync(roost, by_structure, configs[1], base)
            assert sent.returncode == 0, sent.stderr
            second_id = sent.stdout.split()[2].rstrip(":")

            [fleet_status] = readme_commands("roost fleet status")
            reports = {}
            with anyio.fail_after(60):
                for ident in (fleet_id, second_id):
                    args = [ident if a.startswith("f2026") else a for a in fleet_status]
                    while True:
                        done = await anyio.to_thread.run_sync(
                            roost, [*args, "--json"], configs[0], base
                        )
                        assert done.returncode == 0, done.stderr
                        reports[ident] = json.loads(done.stdout)
                        if "pending" not in reports[ident]["counts"] and (
                            "sending" not in reports[ident]["counts"]
                        ):
                            break
                        await anyio.sleep(0.5)
            human = await anyio.to_thread.run_sync(
                roost, [a if a != "f20261201160000-1a2b" else fleet_id for a in fleet_status],
                configs[0], base,
            )  # fmt: skip
        finally:
            for proc in procs:
                stop(proc)
    # +2 °C for the enrolled home only, confirmed by its echo; its restore waits for 18:00
    assert [r["account"] for r in reports[fleet_id]["accounts"]] == ["h0"]
    assert reports[fleet_id]["counts"] == {"confirmed": 1}, reports[fleet_id]
    assert reports[fleet_id]["restores"] == {"due": 1}
    assert homes.sims[0].home.thermostat("t-0").target_c == 26.0
    assert "1 confirmed" in human.stdout
    # heat=18 for the home whose structure is named so (h1, "Home 1")
    assert [r["account"] for r in reports[second_id]["accounts"]] == ["h1"]
    assert reports[second_id]["counts"] == {"confirmed": 1}, reports[second_id]
    assert homes.sims[1].home.thermostat("t-1").target_c == 18.0
    for log in ("worker1.log", "worker2.log"):
        assert "password authentication failed" not in (tmp_path / log).read_text(errors="replace")
