"""The layers of l1stream/ and the direction of imports between them (docs/architecture.md).

Every import in the package, at module level or inside a function, is parsed (``ast``, no
import is executed).  A module may import its own layer or any layer below; never one above,
never the package's facade (``l1stream/__init__.py``), and the module graph has no circle.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "l1stream"

# Bottom first.  The shared base is the package's top-level modules other than the facade.
LAYERS = ["base", "exact", "parquet", "sources", "engine", "outputs", "report", "scheduled", "cli"]
BASE_MODULES = {"errors", "_version", "storage", "s3_gets", "markup"}
FACADE = {"l1stream", "l1stream.__main__"}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    """The layer of ``l1stream.x.y``; None for the facade."""
    if module in FACADE:
        return None
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in BASE_MODULES:
        return "base"
    if parts[1] in LAYERS:
        return parts[1]
    raise AssertionError(f"{module} belongs to no layer: add it to a layer folder or to BASE_MODULES")


def imported_modules(path: pathlib.Path, module: str, known: set) -> set:
    """The l1stream modules ``module`` imports (resolved to modules that exist)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "l1stream" or target.startswith("l1stream."):
                hit = resolve(target)
                if hit:
                    found.add(hit)
    found.discard(module)
    return found


def import_graph() -> dict:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    graph = {}
    for module, path in paths.items():
        targets = imported_modules(path, module, known)
        # "from l1stream.exact import summation" resolves to the module, not the package __init__
        graph[module] = {t for t in targets if not (t in known and paths[t].name == "__init__.py"
                                                     and any(o.startswith(t + ".") for o in targets))}
    return graph


GRAPH = import_graph()


def test_every_module_is_in_a_layer():
    for module in GRAPH:
        layer_of(module)  # raises for a stray module


def test_the_layer_folders_exist_and_hold_code():
    for layer in LAYERS[1:]:
        folder = PACKAGE / layer
        assert (folder / "__init__.py").is_file(), f"{layer}/ is not a package"
        assert any(p.name != "__init__.py" for p in folder.glob("*.py")), f"{layer}/ holds no module"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    own = layer_of(module)
    if own is None:
        return  # the facade re-exports from every layer
    for target in sorted(GRAPH[module]):
        assert target not in FACADE, f"{module} imports the package facade ({target}); import the module itself"
        theirs = layer_of(target)
        assert LAYERS.index(theirs) <= LAYERS.index(own), (
            f"{module} (layer {own}) imports {target} (layer {theirs}), a higher layer: "
            f"imports must point down {' < '.join(LAYERS)}")


def test_no_import_cycles():
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The checker itself: a lower module importing a higher one, and a relative import, are found."""
    fake = tmp_path / "l1stream" / "exact"
    fake.mkdir(parents=True)
    source = fake / "bad.py"
    source.write_text("def f():\n    from l1stream.engine.job import prepare\n    from ..report import render\n")
    known = {"l1stream.engine.job", "l1stream.report.render", "l1stream.report", "l1stream.exact.bad"}
    found = imported_modules(source, "l1stream.exact.bad", known)
    assert found == {"l1stream.engine.job", "l1stream.report", "l1stream.report.render"}
    assert LAYERS.index(layer_of("l1stream.engine.job")) > LAYERS.index(layer_of("l1stream.exact.bad"))


def test_the_exact_core_knows_nothing_of_dask_or_files():
    for module, path in ((m, PACKAGE.parent / (m.replace(".", "/") + ".py")) for m in GRAPH
                         if m.startswith("l1stream.exact.")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in {"dask", "distributed", "fsspec", "pandas"}, f"{module} imports {name}"
                assert not name.startswith("pyarrow.dataset") and name != "pyarrow.parquet", \
                    f"{module} imports {name} (I/O belongs to the sources and the reader)"
