from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """host/child.py forks only while the process has one thread, and its tests check
    that path: they run first, before an earlier test's idle AnyIO worker thread (kept
    for the next `to_thread` call of the session's event loop) makes it spawn instead."""
    items.sort(key=lambda item: item.path.name != "test_child.py")  # a stable sort


@pytest.fixture
def anyio_backend() -> str:
    # apprise's async path and our daemon run on asyncio.
    return "asyncio"


from tests.pgserver import pg_server, pg_url  # noqa: E402, F401  (fixtures)
