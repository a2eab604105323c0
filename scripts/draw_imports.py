"""Draw the house: the imports between cnnshape's modules as a Graphviz diagram.

    python scripts/draw_imports.py [--package PATH] [--group] -o docs/img/imports.svg

Edges in red close an import cycle (a package importing its own submodules is no cycle). With
``--group`` the modules of analyse/sizes, analyse/receptive_field and cli are drawn as one box
each. ``--package`` draws another checkout (e.g. an older commit extracted with ``git archive``),
to compare before and after.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import graphviz
import networkx as nx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import test_structure  # noqa: E402  the one reading of the imports, shared with the test

GROUPS = ("cnnshape.analyse.sizes", "cnnshape.analyse.receptive_field", "cnnshape.cli")


def _group(name: str) -> str:
    return next((g for g in GROUPS if name == g or name.startswith(g + ".")), name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, default=test_structure.PACKAGE)
    parser.add_argument("--group", action="store_true")
    parser.add_argument("-o", "--output", required=True)
    opts = parser.parse_args()
    test_structure.PACKAGE = opts.package.resolve()
    graph = test_structure.import_graph()
    edges = {(a, b) for a, b in graph.edges if not b.startswith(a + ".")}
    if opts.group:
        edges = {(_group(a), _group(b)) for a, b in edges if _group(a) != _group(b)}
    g = nx.DiGraph(sorted(edges))
    g.add_nodes_from(_group(n) if opts.group else n for n in graph.nodes)
    in_cycle = {e for c in nx.simple_cycles(g) for e in zip(c, c[1:] + c[:1])}
    dot = graphviz.Digraph(graph_attr={"rankdir": "BT", "fontname": "Helvetica", "fontsize": "10"},
                           node_attr={"shape": "box", "fontname": "Helvetica", "fontsize": "10"})
    for n in sorted(g.nodes):
        dot.node(n, n.removeprefix("cnnshape."))
    for a, b in sorted(g.edges):
        dot.edge(a, b, color="red" if (a, b) in in_cycle else "gray40")
    path = Path(opts.output)
    path.write_bytes(dot.pipe(format=path.suffix.lstrip(".")))
    print(f"{path}: {g.number_of_nodes()} modules, {g.number_of_edges()} imports, "
          f"{len(in_cycle)} import(s) in cycles")


if __name__ == "__main__":
    main()
