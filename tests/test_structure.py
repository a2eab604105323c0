"""The shape of the house (docs/architecture.md): imports between cnnshape's modules form no cycle,
only the layers above the renderers import a renderer, the report and the shared vocabulary are
torch-free, and the CLI's choices are the vocabulary's."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cnnshape"

#: the modules above the renderers: they may import one
ABOVE_RENDERERS = ("cnnshape.render", "cnnshape.cli", "cnnshape.api", "cnnshape.testing")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The cnnshape modules ``path`` imports anywhere in its body (lazy imports count)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # "pkg.mod.Name" -> "pkg.mod"
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("cnnshape"):
                found.add(target)
    return found


def import_graph() -> nx.DiGraph:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(f) for f in files}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for f in files:
        for target in _imports(f, modules):
            # a package's __init__ runs before its submodules: importing "a.b" imports "a" too
            graph.add_edge(_module_name(f), target)
    return graph


def test_no_import_cycle() -> None:
    graph = import_graph()
    # a package importing its own submodules is how packages re-export; it is no loop
    edges = [(a, b) for a, b in graph.edges if not b.startswith(a + ".")]
    cycles = list(nx.simple_cycles(nx.DiGraph(edges)))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c + [c[0]]) for c in cycles)


def test_only_the_layers_above_the_renderers_import_one() -> None:
    graph = import_graph()
    wrong = sorted((a, b) for a, b in graph.edges
                   if b.startswith("cnnshape.render") and not a.startswith(ABOVE_RENDERERS))
    assert not wrong, wrong


@pytest.mark.parametrize("module", ["cnnshape.vocab", "cnnshape.errors", "cnnshape.report", "cnnshape.request",
                                    "cnnshape.trace.records", "cnnshape.check", "cnnshape.cli"])
def test_floor_modules_do_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", f"importing {module} imports torch"


def test_the_cli_choices_are_the_vocabulary() -> None:
    from typer.main import get_command

    from cnnshape import vocab
    from cnnshape.cli import app
    from cnnshape.trace.tracers import TRACER_FNS

    assert tuple(TRACER_FNS) == vocab.CONCRETE_TRACERS
    commands = get_command(app).commands  # type: ignore[attr-defined]
    expected = {("summary", "--format"): vocab.REPORT_FORMATS, ("summary", "--dtype"): vocab.VERIFY_DTYPES,
                ("summary", "--tracer"): vocab.TRACERS, ("check", "--format"): vocab.CHECK_FORMATS,
                ("rf", "--format"): vocab.TABLE_OR_JSON, ("sizes", "--format"): vocab.TABLE_OR_JSON,
                ("graph", "--rankdir"): vocab.RANKDIRS, ("scan", "--format"): vocab.SCAN_FORMATS}
    for (command, flag), values in expected.items():
        option = next(p for p in commands[command].params if flag in p.opts)
        assert option.metavar == "[" + "|".join(values) + "]", (command, flag)


def test_no_module_is_oversized() -> None:
    # a module is one concern and fits in a reading (STYLE.md item 20)
    long = {_module_name(f): n for f in PACKAGE.rglob("*.py") if (n := len(f.read_text().splitlines())) > 450}
    assert not long, long
