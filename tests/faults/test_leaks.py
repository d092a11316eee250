"""Secrets never leave: distinct secrets are planted in every place a secret can be
configured (each account kind's tokens, client secrets, refresh tokens and password, a
credential file, apprise URLs with a password and a token path, the webhook secret), the
cloud echoes all of them back in its error bodies, a push target fails, an account loses
its authorization (a push with the vendor's reason), and then every output is scanned:
the debug log, every `--json` and human command, the SQLite file (but its token table,
whose job is to keep them), the metrics page and every payload the sink received."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from roost.core.redact import REDACTED
from roost.providers.netatmo import errors
from roost.simulator import netatmo
from roost.simulator.home import SimHome
from tests.faults.harness import TALLY, Daemon, config_text, fault_bed, wait_for
from tests.faults.test_listeners import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

SECRETS = {
    "wwn token": "P1wwn-7Q2x9LmPzKd",
    "netatmo client secret": "P2nacs-4Hk8ZtRw",
    "netatmo refresh token": "P3nart-9Jd2XqVb",
    "sdm client secret": "P4sdcs-6Fp3NwYe",
    "sdm refresh token": "P5sdrt-2Lm7TgUh",
    "nest web password (credential file)": "P6webpw-8Rs4KcQa",
    "apprise password": "P7appw-3Vn6HbZj",
    "apprise token path": "P8apth-5Wq1MxDc",
    "nest web issue_token login hint": "P9ntih-1Yc5RvKs",
    "nest web cookie SID": "P10cks-7Ga2PwLn",
    "nest web cookie HSID": "P11ckh-4Ue9JmXf",
    "google api key": "P12gak-6Tb3QsWd",
}


class CredentialDaemon(Daemon):
    """`roost run` with a systemd-style $CREDENTIALS_DIRECTORY."""

    credentials: Path = Path()

    async def start(self, kill_at: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
        env["CREDENTIALS_DIRECTORY"] = str(self.credentials)
        log = self.log_path.open("ab")
        self.process = await anyio.open_process(
            [sys.executable, "-m", "roost", "run", "--config", str(self.config)],
            stdin=None,
            stdout=log,
            stderr=log,
            env=env,
        )


def settings_text(base: str, cloud: netatmo.NetatmoSimulator, sink_url: str, dirs: Path) -> str:
    closed = "http://127.0.0.1:1"
    hint = SECRETS["nest web issue_token login hint"]
    text = base.replace('level = "info"', 'level = "debug"')
    text = text.replace(
        "[daemon]\n",
        f'[daemon]\ncontrol_socket = "{dirs / "control.sock"}"\nnotify_per_tag = "100/10m"\n',
    )
    text += f"""
[[notify.targets]]
url = "json://someone:{SECRETS["apprise password"]}@127.0.0.1:1/{SECRETS["apprise token path"]}"

[[accounts]]
name = "flat"
provider = "netatmo"
api_url = "{cloud.url}"
client_id = "{cloud.client_id}"
client_secret = "{SECRETS["netatmo client secret"]}"
refresh_token = "{SECRETS["netatmo refresh token"]}"
fast_poll_s = 0.3
slow_poll_s = 1
webhook_listen = "127.0.0.1:{free_port()}"

[[accounts]]
name = "google"
provider = "sdm"
api_url = "{closed}/v1"
token_url = "{closed}/token"
pubsub_url = "{closed}/pubsub"
project_id = "leaky"
client_id = "leaky.apps.example"
client_secret = "{SECRETS["sdm client secret"]}"
refresh_token = "{SECRETS["sdm refresh token"]}"
subscription = "projects/leaky/subscriptions/roost"

[[accounts]]
name = "web"
provider = "nest_web"
api_url = "{closed}"
email = "someone@example.com"
password_credential = "nest-web-password"

[[accounts]]
name = "google-web"
provider = "nest_web"
api_url = "{closed}"
auth_proxy_url = "{closed}"
issue_token = "{closed}/iframerpc?action=issueToken&login_hint={hint}"
cookies = "SID={SECRETS["nest web cookie SID"]}; HSID={SECRETS["nest web cookie HSID"]}"
google_api_key = "{SECRETS["google api key"]}"

[metrics]
listen = "127.0.0.1:{free_port()}"
"""
    return text


def roost(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "roost", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        errors="replace",
    )
    return done.stdout + done.stderr


def database_text(path: Path) -> str:
    """Every table of the store but `tokens`, as SQL text."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        lines = [line for line in conn.iterdump() if 'INSERT INTO "tokens"' not in line]
    finally:
        conn.close()
    return "\n".join(lines)


async def test_no_planted_secret_reaches_any_output(tmp_path: Path) -> None:
    home = SimHome.demo()
    echo = "invalid credentials: " + " ".join(SECRETS.values())
    async with (
        fault_bed(tmp_path, token=SECRETS["wwn token"]) as bed,
        netatmo.serve(
            home,
            client_secret=SECRETS["netatmo client secret"],
            refresh_token=SECRETS["netatmo refresh token"],
        ) as cloud,
    ):
        credentials = tmp_path / "credentials"
        credentials.mkdir()
        (credentials / "nest-web-password").write_text(
            SECRETS["nest web password (credential file)"]
        )
        rules = tmp_path / "rules"
        rules.mkdir()
        base = config_text(bed.cloud.url, bed.cloud.token, bed.sink.url, bed.state_dir, rules)
        bed.daemon.config.write_text(settings_text(base, cloud, bed.sink.url, tmp_path))
        daemon = CredentialDaemon(bed.daemon.config, bed.daemon.log_path)
        daemon.credentials = credentials
        bed.daemon = daemon
        await daemon.start()
        await daemon.wait_connected(1)

        # The cloud echoes every secret in an error body: first a passing failure …
        cloud.fail_next("read", 3, 500, {"error": {"code": 0, "message": echo}})
        await wait_for(lambda: "provider.reconnecting" in daemon.log())
        await anyio.sleep(2)  # recovered and polling again
        # … then a refusal that stops the account, with an urgent push quoting the reason.
        cloud.fail_next("read", 5, 403, {"error": {"code": errors.BAD_SCOPE, "message": echo}})
        await wait_for(lambda: any("lost its authorization" in str(p) for p in bed.sink.received))
        TALLY.faults["cloud echoes every secret in an error body"] += 1
        await anyio.sleep(1.5)  # the failing push target has been tried and logged

        config = bed.daemon.config
        metrics_port = int(config.read_text().split("[metrics]")[1].split(":")[-1].strip(' "\n'))
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        outputs = {
            "debug log": daemon.log(),
            "status": roost(config, "status"),
            "status --json": roost(config, "status", "--json"),
            "events": roost(config, "events", "-n", "1000"),
            "events --json": roost(config, "events", "--json", "-n", "1000"),
            "trace --json": roost(config, "trace", "--json"),
            "outbox": roost(config, "outbox"),
            "outbox --json": roost(config, "outbox", "--json"),
            "metrics": metrics,
            "sink payloads": json.dumps(bed.sink.received),
            "database": database_text(bed.state_dir / "roost.db"),
        }
        issued = [t for t in cloud.grants if len(t) >= 6]  # access tokens the cloud handed out
        planted = {**SECRETS, **{f"issued access token {i}": t for i, t in enumerate(issued)}}

    leaks = [
        f"{what} in {where}"
        for what, secret in planted.items()
        for where, text in outputs.items()
        if secret in text
    ]
    checked = len(planted) * len(outputs)
    print(f"leak scan: {len(leaks)} of {checked} (secret, output) pairs leaked")
    assert leaks == [], leaks
    # The echo really went through every boundary, redacted (not merely absent).
    for where in ("status --json", "events --json", "sink payloads", "debug log", "database"):
        assert REDACTED in outputs[where], where
    assert "invalid credentials" in outputs["status --json"] + outputs["events --json"]
