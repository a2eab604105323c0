"""``cnnshape sizes``: which input sizes the model accepts, and output sizes as formulas."""
from __future__ import annotations

from typing import Annotated

import typer

from .common import (
    Args,
    Inputs,
    Leaves,
    Output,
    Spec,
    TableOrJson,
    Traceback,
    Tracer,
    TracerOpt,
    guarded,
    parse_inputs,
    write_output,
)


def sizes(
    spec: Spec,
    input: Inputs = None,
    axis: Annotated[
        list[int] | None,
        typer.Option("--axis", help="Dim of the first input to study (default: its spatial dims 2..). Repeatable."),
    ] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Also give every layer's size formula.")] = False,
    arg: Args = None,
    format: Annotated[TableOrJson, typer.Option("--format", "-f", help="Output format.")] = TableOrJson.table,
    output: Output = None,
    tracer: TracerOpt = Tracer.auto,
    leaf: Leaves = None,
    traceback: Traceback = False,
) -> None:
    """Minimum and accepted input sizes per axis, and output sizes as formulas of the input size."""

    def run() -> None:
        from ..api import sizes as analyse_sizes
        from ..load import parse_args
        from ..render.sizes import render_sizes_json, render_sizes_text

        report = analyse_sizes(spec, parse_inputs(input), axes=axis, layers=layers, args=parse_args(arg),
                               tracer=tracer.value, leaves=leaf or ())
        render = render_sizes_json if format is TableOrJson.json else render_sizes_text
        write_output(render(report, layers), output)

    guarded(run, traceback)
