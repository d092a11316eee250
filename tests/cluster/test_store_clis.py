"""`roost outbox` and `roost auth`'s token store go through the store the settings name:
with `[store] url` they read and write the fleet's PostgreSQL database, not a SQLite file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from roost.cli.auth import store_tokens
from roost.config.load import load_settings
from roost.providers.base import TokenSet
from roost.store.postgres import PgStore
from roost.store.sqlite import FILE_NAME

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def config(tmp_path: Path, pg_url: str) -> Path:
    path = tmp_path / "roost.toml"
    path.write_text(
        f'[daemon]\nstate_dir = "{tmp_path / "state"}"\n'
        f'control_socket = "{tmp_path / "none.sock"}"\n[store]\nurl = "{pg_url}"\n'
    )
    return path


def roost(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOST_")}
    return subprocess.run(
        [sys.executable, "-m", "roost", *args], capture_output=True, text=True, env=env, timeout=60
    )


async def test_roost_outbox_lists_and_retries_in_the_postgresql_store(
    pg_url: str, tmp_path: Path
) -> None:
    store = PgStore(pg_url)
    try:
        await store.outbox_add("k1", {"title": "CO h1", "rule": "co"}, NOW)
        await store.outbox_update(
            "k1", state="dead", attempts=6, delivered_to=[], next_attempt_at=NOW,
            last_error="HTTP 500",
        )  # fmt: skip
    finally:
        await store.aclose()
    path = config(tmp_path, pg_url)
    listed = roost("outbox", "--config", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["key"], r["state"], r["title"]) for r in rows] == [("k1", "dead", "CO h1")]
    retried = roost("outbox", "--config", str(path), "--retry", "k1")
    assert retried.returncode == 0, retried.stderr
    store = PgStore(pg_url)
    try:
        assert [e.state for e in await store.outbox_list()] == ["pending"]
    finally:
        await store.aclose()
    assert not (tmp_path / "state" / FILE_NAME).exists()  # no SQLite file made on the side


async def test_roost_auth_stores_tokens_in_the_postgresql_store(
    pg_url: str, tmp_path: Path
) -> None:
    settings = load_settings(config(tmp_path, pg_url))
    tokens = TokenSet("access-1", "refresh-1", NOW, "sdm")
    await store_tokens(settings, "villa", tokens)
    store = PgStore(pg_url)
    try:
        assert await store.load_token("villa") == tokens
    finally:
        await store.aclose()
    assert not (tmp_path / "state" / FILE_NAME).exists()
