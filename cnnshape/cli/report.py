"""``cnnshape report``: one self-contained interactive HTML page (docs/report.md)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..vocab import COLOR_BY, RANKDIRS
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
    guarded,
    model_file,
    request_from_cli,
    write_output,
)

if TYPE_CHECKING:
    from ..analyse.sizes.records import SizeReport
    from ..request import Request


def report(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Write the page to this file (e.g. model.html); without it, to stdout.")] = None,
    depth: Depth = None,
    color_by: Annotated[str, choice(
        "--color-by", COLOR_BY, "What the diagram's nodes are coloured by when the page opens (it can switch): "
        "layer type, MACs, parameters, activation memory or receptive field size.")] = "macs",
    rankdir: Annotated[str, choice(
        "--rankdir", RANKDIRS, "Diagram direction: TB (top to bottom) or LR (left to right).")] = "TB",
    sizes: Annotated[bool, typer.Option(
        "--sizes/--no-sizes", help="Also find the accepted input sizes (one more trace per size checked; "
        "--no-sizes shows the first trace's own estimate).")] = True,
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    train: Train = False,
    memory: Annotated[bool, typer.Option(
        "--memory/--no-memory", help="Also give the inference peak memory (with --train, a training step with "
        "Adam) by tensor liveness (docs/memory.md).")] = True,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """The architecture, the per-layer numbers and the receptive fields in one HTML file that opens
    offline: diagram coloured by cost, sortable table, details, totals and notes."""

    def run() -> None:
        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})
        from ..api import analyze
        from ..render.html import to_html

        request = request_from_cli(spec, input, arg, tracer, leaf, train)
        result = analyze(request, depth=depth, memory=memory)
        size_report = _sizes(request) if sizes else None
        write_output(to_html(result, sizes=size_report, color_by=color_by, rankdir=rankdir), output)

    guarded(run, traceback, spec, timeout)


def _sizes(request: Request) -> SizeReport | str:
    """The accepted input sizes (layer arithmetic only, to stay quick), or why there are none:
    the page is made either way."""
    from ..errors import CnnshapeError
    from ..pipeline import run_sizes

    try:
        return run_sizes(request, None, False, False)
    except CnnshapeError as e:
        return str(e)
    except Exception as e:  # a bug in a secondary analysis never takes the page down
        return f"cnnshape bug ({type(e).__name__}: {e}); please report it"
