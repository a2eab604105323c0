"""``cnnshape summary``: the per-layer table, or markdown, CSV or JSON."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import (
    Args, Depth, Format, Inputs, Leaves, Spec, Traceback, Tracer, TracerOpt, Train,
    analyze_from_cli, guarded, write_output,
)


def summary(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    depth: Depth = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
    tracer: TracerOpt = Tracer.auto,
    leaf: Leaves = None,
    train: Train = False,
    traceback: Traceback = False,
) -> None:
    """Per-layer output shapes, parameters, MACs/FLOPs and memory, with totals."""

    def run() -> None:
        from ..render import formats

        report = analyze_from_cli(spec, input, arg, tracer, leaf, train, depth)
        write_output(formats.render(report, format.value), output)

    guarded(run, traceback)
