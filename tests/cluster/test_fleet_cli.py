"""`roost fleet send` / `roost fleet status` as a user runs them, on a real PostgreSQL:
selection by tag (with --account and --structure as AND), the window's checks, and the
accounts' tags validated by the settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from roost.config.load import load_settings
from roost.config.settings import ConfigError
from roost.store.postgres import PgStore

ACCOUNTS = {"a1": '["enrolled", "east"]', "a2": '["enrolled"]', "a3": "[]"}


def config(tmp_path: Path, pg_url: str, tags: dict[str, str] = ACCOUNTS) -> Path:
    accounts = "".join(
        f'\n[[accounts]]\nname = "{name}"\nprovider = "nest_wwn"\n'
        f'api_url = "http://127.0.0.1:9/{name}"\ntoken = "c.{name}"\ntags = {t}\n'
        for name, t in tags.items()
    )
    path = tmp_path / "roost.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}"\n[store]\nurl = "{pg_url}"\n'
        f"[cluster]\nenabled = true\n{accounts}"
    )
    return path


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    return subprocess.run(
        [sys.executable, "-m", "roost", *args], capture_output=True, text=True, env=env, timeout=60
    )


def targets(pg_url: str, fleet_id: str) -> list[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT account FROM fleet_targets WHERE fleet = %s ORDER BY 1", (fleet_id,)
        )
        return [str(r[0]) for r in rows.fetchall()]


def test_send_selects_by_tag_and_status_shows_each_row(pg_url: str, tmp_path: Path) -> None:
    PgStore(pg_url)
    path = config(tmp_path, pg_url)
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="minutes")
    sent = roost(
        "fleet", "send", "--config", str(path), "--set", "cool_delta=2", "--tag", "enrolled",
        "--until", until,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    fleet_id = sent.stdout.split()[2].rstrip(":")
    assert targets(pg_url, fleet_id) == ["a1", "a2"]
    both = roost(
        "fleet", "send", "--config", str(path), "--set", "heat=19",
        "--tag", "enrolled", "--tag", "east",
    )  # fmt: skip
    assert targets(pg_url, both.stdout.split()[2].rstrip(":")) == ["a1"]
    named = roost(
        "fleet", "send", "--config", str(path), "--set", "heat=19",
        "--tag", "enrolled", "--account", "a2", "--account", "a3",
    )  # fmt: skip
    assert targets(pg_url, named.stdout.split()[2].rstrip(":")) == ["a2"]
    shown = roost("fleet", "status", fleet_id, "--config", str(path), "--json")
    report = json.loads(shown.stdout)
    assert report["counts"] == {"pending": 2}
    assert report["restores"] == {"due": 2}
    assert report["selection"] == "tagged enrolled"
    assert datetime.fromisoformat(report["ends_at"]) > datetime.now(UTC)
    text = roost("fleet", "status", fleet_id, "--config", str(path)).stdout
    assert "2 pending" in text
    assert "restores: 2 due" in text


def test_send_refuses_a_bad_window_or_an_empty_selection(pg_url: str, tmp_path: Path) -> None:
    PgStore(pg_url)
    path = config(tmp_path, pg_url)
    base = ("fleet", "send", "--config", str(path), "--set", "cool_delta=2")
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="minutes")
    cases = {
        ("--until", past): "already past",
        ("--from", "2030-01-01T18:00+00:00", "--until", "2030-01-01T16:00+00:00"): (
            "not after --from"
        ),
        ("--until", "2030-01-01T18:00"): "offset",
        ("--tag", "west"): "no account is tagged west",
        ("--tag", "enrolled", "--account", "a3"): "no account matches",
    }
    for extra, message in cases.items():
        done = roost(*base, *extra)
        assert done.returncode == 2, (extra, done.stdout)
        assert message in done.stderr, (extra, done.stderr)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM fleet_commands").fetchone() == (0,)


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ('["enrolled", "enrolled"]', "tags listed twice: enrolled"),
        ('["has space"]', "tag 'has space'"),
        (f'["{"x" * 33}"]', "up to 32"),
    ],
)
def test_account_tags_are_short_names_listed_once(tmp_path: Path, tags: str, message: str) -> None:
    path = config(tmp_path, "postgresql://roost@127.0.0.1/roost", {"a1": tags})
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
