"""The house rules of the package, checked on its source (no import is run):

- layering: a module imports only from its own top-level package or from a LOWER layer of the
  table below (modules on one layer are independent of each other);
- no import cycle between modules;
- no module imports another module's private (``_name``) names;
- no module over 600 lines, no function over 80 lines.

Imports inside functions count (a lazy import is still a dependency); imports under
``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "latentbench"
ROOT = "latentbench"  # the package's own __init__: the lazy public API

# Top to bottom. A module may import from any layer below its own, never from its own layer
# (other than its own top-level package) nor from above.
LAYERS: list[set[str]] = [
    {"__main__"},  # python -m latentbench
    {"cli", "testing"},  # the command line; stand-in models for tests (nothing imports either)
    {ROOT},  # `import latentbench`: load_space, the runners, the config types
    {"plan"},  # `latentbench plan`: an experiment's full-size dry run
    {"experiment"},  # an experiment file: the steps below in order, then the report
    {"bench"},  # one runner per command: recon, train-tokenizer, train-gen, eval-gen, ...
    {"train"},  # training loops of tokenizers and generators
    {"metrics"},  # PSNR ... FID, GenEval judges, editing metrics
    {"data"},  # datasets: folders, named sets, the Shapes world, latent caches
    {"gen"},  # the generator: DiT, flow matching, text encoders (lives in a space's latents)
    {"spaces"},  # latent spaces behind one interface
    {"geneval", "report"},  # GenEval tasks/metadata/layout IO; the report of run folders
    {"registry", "config", "configs"},  # name -> factory tables; typed configs; shipped presets
    {"hub", "nn"},  # weights lookup (explicit path, $LATENTBENCH_WEIGHTS, caches); network blocks
    {"runs", "terminal"},  # run folders, manifests, atomic writes; what the commands print
    {"atomic", "files", "stats"},  # durable writes; safe file reading; statistics
    {"errors"},  # UserError
]
LAYER_OF = {name: len(LAYERS) - i for i, layer in enumerate(LAYERS) for name in layer}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

# What the checks find today in files other engineers are changing in parallel: the test asserts
# the measured violations EQUAL this set, so a new one fails and so does a fixed one still listed.
KNOWN_VIOLATIONS: set[str] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_name(module: str) -> str:
    """latentbench.bench.recon -> bench; latentbench -> the root."""
    return module.split(".")[1] if "." in module else ROOT


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, in functions too, except the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and is_type_checking(node):
            stack += node.orelse
            continue
        stack += list(ast.iter_child_nodes(node))


def imported_modules(module: str, path: Path) -> set[str]:
    """The latentbench modules ``module`` imports; ``from pkg import sub`` names the submodule."""
    found: set[str] = set()
    for node in runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == ROOT}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = module.split(".")
                package = parts if path.name == "__init__.py" else parts[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            if base.split(".")[0] != ROOT:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    found.discard(module)
    return found


GRAPH = {m: imported_modules(m, p) for m, p in MODULES.items()}


def layer_violations() -> set[str]:
    found = set()
    for module, targets in GRAPH.items():
        here = layer_name(module)
        for target in targets:
            there = layer_name(target)
            if here not in LAYER_OF or there not in LAYER_OF:
                continue  # test_every_top_level_name_has_a_layer names it
            if there != here and LAYER_OF[there] >= LAYER_OF[here]:
                found.add(f"layer: {module} -> {target}")
    return found


def cycles() -> set[str]:
    """One entry per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = set()

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules (~100)
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.add("cycle: " + " <-> ".join(sorted(component)))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def size_violations() -> set[str]:
    found = set()
    for module, path in MODULES.items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.add(f"module: {module}")
        functions = [
            n
            for n in ast.walk(ast.parse(text))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        found |= {
            f"function: {module}:{f.name}"
            for f in functions
            if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES  # type: ignore[operator]
        }
    return found


def private_imports() -> set[str]:
    """``from latentbench.x import _name``: x's private helper used elsewhere (type-only too)."""
    found = set()
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == ROOT:
                names = [a.name for a in node.names]
                found |= {
                    f"private: {module} -> {node.module}.{n}"
                    for n in names
                    if n.startswith("_") and not n.startswith("__")
                }
    return found


def test_every_top_level_name_has_a_layer() -> None:
    names = {layer_name(m) for m in MODULES}
    assert names <= set(LAYER_OF), f"add to LAYERS: {sorted(names - set(LAYER_OF))}"


def test_measured_violations_are_exactly_the_known_ones() -> None:
    measured = layer_violations() | cycles() | size_violations() | private_imports()
    assert measured - KNOWN_VIOLATIONS == set(), "new violations"
    assert KNOWN_VIOLATIONS - measured == set(), "fixed: remove them from KNOWN_VIOLATIONS"


# -- the checks themselves catch what they claim to ----------------------------------------
def parse_imports(tmp_path: Path, source: str, name: str = "mod.py") -> set[str]:
    path = tmp_path / name
    path.write_text(source)
    return imported_modules("latentbench.metrics.mod", path)


def test_imports_in_functions_count_and_type_checking_ones_do_not(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import latentbench.errors\n"
        "if TYPE_CHECKING:\n"
        "    from latentbench.bench.recon import ReconConfig\n"
        "else:\n"
        "    from latentbench.runs import claim_output\n"
        "def f():\n"
        "    from latentbench.data import shapes\n"
        "    from . import pixel\n"
    )
    assert parse_imports(tmp_path, source) == {
        "latentbench.errors",
        "latentbench.runs",
        "latentbench.data.shapes",
        "latentbench.metrics.pixel",
    }


def test_a_cycle_and_an_upward_import_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = {
        "latentbench.metrics.a": {"latentbench.metrics.b", "latentbench.bench.recon"},
        "latentbench.metrics.b": {"latentbench.metrics.a"},
        "latentbench.bench.recon": set(),
    }
    monkeypatch.setitem(globals(), "GRAPH", graph)
    assert cycles() == {"cycle: latentbench.metrics.a <-> latentbench.metrics.b"}
    assert layer_violations() == {"layer: latentbench.metrics.a -> latentbench.bench.recon"}


def test_a_private_import_and_a_long_function_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "mod.py"
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))  # + the def line
    path.write_text(f"from latentbench.config import _coerce, __version__\ndef long():\n{body}")
    monkeypatch.setitem(globals(), "MODULES", {"latentbench.metrics.mod": path})
    assert private_imports() == {"private: latentbench.metrics.mod -> latentbench.config._coerce"}
    assert size_violations() == {"function: latentbench.metrics.mod:long"}
