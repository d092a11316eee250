"""The package layout's import contracts hold, and each one fails when broken.

Layers, from the top (a module imports its own layer and those below it):

    cli                     the `roost` command
    testing                 rules against a simulated home; a whole simulated installation
    service, web            the running daemon, its page
    cluster                 a fleet of workers sharing one PostgreSQL store
    config                  settings
    engine | commands       running rules | from a command to the vendor (independent)
    rules                   what a rule is
    state | notify          payloads to events | notifications (independent)
    store                   the durable state
    providers               the vendors
    host                    the process on its machine
    core                    the vocabulary, and the bus

Data flows provider -> state -> bus -> engine -> guards -> dispatch/notify; imports point
the other way only where a later stage uses an earlier one's types (the state is the
providers' `ChangeSink`; a rule run reads the state; dispatch writes through a provider).

No vendor name above providers/ is tests/test_vendor_boundary.py's contract.
"""

# relayout: leave this file as it is (it names modules that exist only in its tests)

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest

import roost
from tests.import_contracts import (
    Graph,
    Violation,
    forbidden,
    import_graph,
    independent,
    layers,
    reachable,
)

ROOT = Path(roost.__file__).resolve().parent

LAYERS = [
    ("roost.cli",),
    ("roost.testing",),
    ("roost.service", "roost.web"),
    ("roost.cluster",),
    ("roost.config",),
    ("roost.engine", "roost.commands"),
    ("roost.rules",),
    ("roost.state", "roost.notify"),
    ("roost.store",),
    ("roost.providers",),
    ("roost.host",),
    ("roost.core",),
]
# What `roost run` executes: everything the service and the runtime import, however late.
RUNTIME_PATH = ["roost.service"]
NOT_AT_RUNTIME = ["roost.simulator", "roost.testing", "roost.cli"]
CLI_ITSELF = ["roost.cli", "roost.__main__"]  # `python -m roost` is the CLI
# The simulators stand in for vendor clouds: they know the vendors' wire, not roost.
SIMULATOR_MAY_USE = ["roost.simulator", "roost.core", "roost.host", "roost.providers"]


def violations(graph: Graph) -> list[Violation]:
    everything = sorted({m.split(".")[1] for m in graph if m.count(".") >= 1})
    above_simulator = [f"roost.{p}" for p in everything if f"roost.{p}" not in SIMULATOR_MAY_USE]
    return [
        *layers(graph, LAYERS, "layers"),
        *independent(graph, ["roost.engine", "roost.commands"], "engine | commands"),
        *independent(graph, ["roost.state", "roost.notify"], "state | notify"),
        *forbidden(graph, RUNTIME_PATH, NOT_AT_RUNTIME, "runtime path", transitive=True),
        *forbidden(graph, ["roost"], ["roost.cli"], "no CLI in the daemon", exempt=CLI_ITSELF),
        *forbidden(graph, ["roost.simulator"], above_simulator, "simulators"),
    ]


def graph_of(root: Path) -> Graph:
    return import_graph(root, skip=("examples",))


def test_the_tree_keeps_every_contract() -> None:
    assert [str(v) for v in violations(graph_of(ROOT))] == []


def test_the_runtime_path_is_what_roost_run_imports() -> None:
    """The closure is computed, not empty: it reaches the engine, the store and the vendors'
    registry (which imports each vendor package by name, when its account is configured)."""
    reached = reachable(graph_of(ROOT), RUNTIME_PATH)
    for module in ("roost.engine.engine", "roost.store.sqlite", "roost.providers.registry"):
        assert module in reached


# ---- each contract fails when broken: a violating module in a copy of the tree ----------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "roost"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "examples"))
    return copy


@functools.cache
def unbroken() -> frozenset[str]:
    """The tree's own violations, read once: every copy starts as the tree (the same files,
    the same package name), so each test reads only its broken copy."""
    return frozenset(str(v) for v in violations(graph_of(ROOT)))


def broken(tree: Path, module: str, source: str) -> list[str]:
    """The violations a module (new, or appended to) adds to the copy of the tree."""
    before = unbroken()
    path = tree.joinpath(*module.split(".")[1:]).with_suffix(".py")
    if path.exists():
        path.write_text(path.read_text(encoding="utf-8") + "\n" + source, encoding="utf-8")
    else:
        path.write_text(source, encoding="utf-8")
    return [str(v) for v in violations(graph_of(tree)) if str(v) not in before]


def test_a_lower_layer_importing_a_higher_one_fails(tree: Path) -> None:
    found = broken(tree, "roost.state.shortcut", "from roost.engine.engine import Engine\n")
    assert found == ["layers: roost.state.shortcut imports roost.engine.engine"]


def test_a_lazy_import_upwards_fails_too(tree: Path) -> None:
    source = "def later() -> None:\n    from roost.service.runtime import Runtime\n"
    found = broken(tree, "roost.core.later", source)
    assert found == ["layers: roost.core.later imports roost.service.runtime"]


def test_engine_and_commands_importing_each_other_fails(tree: Path) -> None:
    found = broken(tree, "roost.engine.sends", "from roost.commands import dispatch\n")
    assert found == ["engine | commands: roost.engine.sends imports roost.commands.dispatch"]


def test_state_and_notify_importing_each_other_fails(tree: Path) -> None:
    found = broken(tree, "roost.notify.peek", "import roost.state.home_state\n")
    assert found == ["state | notify: roost.notify.peek imports roost.state.home_state"]


def test_a_simulator_on_the_runtime_path_fails(tree: Path) -> None:
    """Deep down and inside a function: the clock (imported by the runtime) asks the
    simulator for something. The chain is reported."""
    source = "def fake() -> None:\n    from roost.simulator.home import SimHome  # noqa: F401\n"
    found = broken(tree, "roost.core.clock", source)
    assert found, "nothing found"
    assert all(f.startswith("runtime path: roost.service.") for f in found)
    assert all("imports roost.simulator.home (via " in f and "roost.core.clock" in f for f in found)
    assert any(f.startswith("runtime path: roost.service.runtime imports") for f in found)


def test_testing_on_the_runtime_path_fails(tree: Path) -> None:
    found = broken(tree, "roost.service.helper", "from roost.testing import simulate\n")
    assert "runtime path: roost.service.helper imports roost.testing" in found


def test_the_daemon_importing_the_cli_fails(tree: Path) -> None:
    found = broken(tree, "roost.web.pretty", "from roost.cli.terminal import clean\n")
    assert "no CLI in the daemon: roost.web.pretty imports roost.cli.terminal" in found


def test_a_simulator_importing_roost_fails(tree: Path) -> None:
    found = broken(tree, "roost.simulator.cheat", "from roost.state.home_state import HomeState\n")
    assert found == ["simulators: roost.simulator.cheat imports roost.state.home_state"]
