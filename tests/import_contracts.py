"""Import contracts for a package: layers, forbidden imports, independence.

Every import counts, wherever it is in a file (module level, inside a function, under
`TYPE_CHECKING`): a lazy import is still a dependency, only a later one. `from a.b import c`
depends on the module `a.b.c` when there is one, else on `a.b`.

A small checker of our own rather than import-linter: the graph is ~150 modules, the rules
below are four, and each contract is shown failing in tests/test_import_contracts.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

Graph = dict[str, set[str]]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path, skip: Iterable[str] = ()) -> Graph:
    """module -> the modules of the package (rooted at the folder `root`) it imports."""
    skipped = tuple(skip)
    files = {
        module_name(root, p): p
        for p in sorted(root.rglob("*.py"))
        if not any(part in skipped for part in p.relative_to(root).parts)
    }
    package = root.name
    graph: Graph = {}
    for name, path in files.items():
        edges: set[str] = set()
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    edges.add(full if full in files else base)
        graph[name] = {
            e for e in edges if (e == package or e.startswith(package + ".")) and e != name
        }
    return graph


def within(module: str, packages: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@dataclass(frozen=True)
class Violation:
    contract: str
    importer: str
    imported: str
    via: tuple[str, ...] = ()

    def __str__(self) -> str:
        chain = f" (via {' -> '.join(self.via)})" if self.via else ""
        return f"{self.contract}: {self.importer} imports {self.imported}{chain}"


def layers(graph: Graph, order: Sequence[Sequence[str]], name: str) -> list[Violation]:
    """`order` lists layers from the top; a layer is one or more packages. A module may
    import its own layer and the layers below it, never one above."""
    level = {pkg: i for i, layer in enumerate(order) for pkg in layer}

    def layer_of(module: str) -> int | None:
        found = [(len(p), i) for p, i in level.items() if within(module, [p])]
        return max(found)[1] if found else None

    out = []
    for importer, imported in sorted((m, i) for m, deps in graph.items() for i in deps):
        mine, theirs = layer_of(importer), layer_of(imported)
        if mine is not None and theirs is not None and theirs < mine:
            out.append(Violation(name, importer, imported))
    return out


def forbidden(
    graph: Graph,
    sources: Sequence[str],
    targets: Sequence[str],
    name: str,
    *,
    transitive: bool = False,
    exempt: Sequence[str] = (),
) -> list[Violation]:
    """No module in `sources` (except `exempt`) imports one in `targets`: directly, or with
    `transitive`, through any chain of imports."""
    out = []
    for start in sorted(m for m in graph if within(m, sources) and not within(m, exempt)):
        if not transitive:
            out += [Violation(name, start, i) for i in sorted(graph[start]) if within(i, targets)]
            continue
        seen, path = {start}, {start: (start,)}
        todo = [start]
        while todo:
            module = todo.pop()
            for nxt in sorted(graph.get(module, ())):
                if nxt in seen:
                    continue
                seen.add(nxt)
                path[nxt] = (*path[module], nxt)
                if within(nxt, targets):
                    out.append(Violation(name, start, nxt, path[nxt][1:-1]))
                else:
                    todo.append(nxt)
    return out


def reachable(graph: Graph, sources: Sequence[str]) -> set[str]:
    """Every module that the modules in `sources` import, directly or not."""
    seen: set[str] = set()
    todo = [m for m in graph if within(m, sources)]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def independent(graph: Graph, packages: Sequence[str], name: str) -> list[Violation]:
    """None of `packages` imports another of them."""
    out = []
    for importer, imported in sorted((m, i) for m, deps in graph.items() for i in deps):
        a = [p for p in packages if within(importer, [p])]
        b = [p for p in packages if within(imported, [p])]
        if a and b and a != b:
            out.append(Violation(name, importer, imported))
    return out
