"""Each store the runtime can use, as a fixture: the tests that take `store` run on SQLite
and on a real PostgreSQL (tests/pgserver.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roost.store.interface import StateStore
from roost.store.sqlite import Store


@pytest.fixture(params=["sqlite", "postgres"], name="store")
async def store_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StateStore]:
    opened: StateStore
    if request.param == "sqlite":
        opened = Store.open(tmp_path)
    else:
        from roost.store.postgres import PgStore

        opened = PgStore(request.getfixturevalue("pg_url"))
    try:
        yield opened
    finally:
        await opened.aclose()
