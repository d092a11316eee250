from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    # apprise's async path and our daemon run on asyncio.
    return "asyncio"


from tests.pgserver import pg_server, pg_url  # noqa: E402, F401  (fixtures)
