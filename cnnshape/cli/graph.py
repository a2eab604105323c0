"""``cnnshape graph``: the architecture as a Graphviz diagram (.dot, .svg, .png or .pdf)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..vocab import GRAPH_FORMATS, RANKDIRS
from .common import (
    Args,
    Depth,
    Inputs,
    Leaves,
    Spec,
    Timeout,
    Traceback,
    TracerOpt,
    Train,
    check_outputs,
    choice,
    fail,
    guarded,
    model_file,
    request_from_cli,
    write_output,
)


def graph(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o",
        help="Write the diagram here; the extension picks the format: .dot, .svg, .png or .pdf. "
             "Without it, DOT source goes to stdout.")] = None,
    depth: Depth = None,
    rankdir: Annotated[str, choice(
        "--rankdir", RANKDIRS, "Layout direction: TB (top to bottom) or LR (left to right).")] = "TB",
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    train: Train = False,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """Draw the traced graph: layers as nodes, tensor shapes on the edges, modules as clusters."""
    fmt = "dot"
    if output is not None and output != "-":
        fmt = Path(output).suffix.lower().lstrip(".")
        if fmt not in GRAPH_FORMATS:
            fail(f"cannot tell the diagram format from {output!r}: the file name must end in "
                 f"{', '.join('.' + f for f in GRAPH_FORMATS)}")

    def run() -> None:
        from ..files import atomic_write_bytes
        from ..render.graphviz import render_graph, require_dot, to_digraph
        from .isolation import after_run

        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})

        if fmt != "dot":
            require_dot()  # before the (possibly long) analysis
        from ..api import analyze

        report = analyze(request_from_cli(spec, input, arg, tracer, leaf, train))
        data = render_graph(to_digraph(report.collapse(depth), rankdir=rankdir), fmt)
        if output is None or output == "-":
            write_output(data.decode("utf-8"), None)
        else:
            after_run(lambda: atomic_write_bytes(output, data, "--output"))

    guarded(run, traceback, spec, timeout)
