from __future__ import annotations

import pytest

# `.ci/run` runs the suite twice: on the newest versions pyproject.toml allows, then on the
# lowest (its floors), to prove each floor works. The second pass leaves out the tests below
# (`-m "not newest_only"`): each either needs the newest versions, or checks roost's own
# logic with third-party calls that the tests named beside it make on the floors too. They
# all run in the first pass. Keys are a file or a file::test, as pytest names them.
_FLEET = (
    "worker processes on one PostgreSQL, run once (on the newest versions): psycopg's floor"
    " is exercised by the store contract (tests/store_kit.py) and tests/cluster/test_ownership.py"
)
NEWEST_ONLY = {
    "tests/test_wheel.py": "installs the newest versions in a venv of its own",
    "tests/test_rule_schema.py::test_the_shipped_schema_is_current": (
        "the schema file is generated with the newest pydantic, whose JSON schema output differs"
    ),
    "tests/cluster/test_failover.py": _FLEET,
    "tests/cluster/test_fleet_failover.py": _FLEET,
    "tests/cluster/test_partition.py": _FLEET,
    "tests/cluster/test_readme_fleet.py": _FLEET,
    "tests/faults/test_kill.py": (
        "SIGKILL at the outbox's and timers' commit points: roost's durability over stdlib"
        " sqlite3; the daemon's start, stream and pushes after a kill are"
        " tests/test_alarm_restart.py's and tests/test_end_to_end.py's"
    ),
    "tests/faults/test_instance.py": "the state directory's lock: fcntl (stdlib) and roost",
    "tests/faults/test_alarms.py": (
        "roost's limits and guards during alarms; the same daemon path to the sink is"
        " tests/test_end_to_end.py's and the tests/test_alarm_*.py files'"
    ),
    "tests/faults/test_listeners.py": (
        "attacks on roost's listeners through a whole daemon: the listeners' limits and h11's"
        " answers to bad, slow, oversize and hung-up requests are tests/test_listeners.py's"
        " and tests/test_httpserver.py's"
    ),
    "tests/test_import_contracts.py": "the package layout, read from the source with ast (stdlib)",
    "tests/test_guard_properties.py": (
        "roost's guards judged against an oracle; hypothesis's floor is exercised by eight other"
        " property tests (tests/test_json_delta.py, tests/test_guards_fail_closed.py, ...)"
    ),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        test = item.nodeid.split("[", 1)[0]
        reason = NEWEST_ONLY.get(test) or NEWEST_ONLY.get(path)
        if reason is not None:
            item.add_marker(pytest.mark.newest_only(reason=reason))
    # host/child.py forks only while the process has one thread, and its tests check that
    # path: they run first, before an earlier test's idle AnyIO worker thread (kept for the
    # next `to_thread` call of the session's event loop) makes it spawn instead.
    items.sort(key=lambda item: item.path.name != "test_child.py")  # a stable sort


@pytest.fixture
def anyio_backend() -> str:
    # apprise's async path and our daemon run on asyncio.
    return "asyncio"


from tests.pgserver import pg_server, pg_url  # noqa: E402, F401  (fixtures)
