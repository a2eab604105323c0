"""``cnnshape sizes``: which input sizes the model accepts, and output sizes as formulas."""
from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from .common import Args, Inputs, Leaves, Output, Spec, Traceback, Tracer, TracerOpt, guarded, write_output


class SizesFormat(str, Enum):
    table = "table"
    json = "json"


def sizes(
    spec: Spec,
    input: Inputs = None,
    axis: Annotated[
        list[int] | None,
        typer.Option("--axis", help="Dim of the first input to study (default: its spatial dims 2..). Repeatable."),
    ] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Also give every layer's size formula.")] = False,
    arg: Args = None,
    format: Annotated[SizesFormat, typer.Option("--format", "-f", help="Output format.")] = SizesFormat.table,
    output: Output = None,
    tracer: TracerOpt = Tracer.auto,
    leaf: Leaves = None,
    traceback: Traceback = False,
) -> None:
    """Minimum and accepted input sizes per axis, and output sizes as formulas of the input size."""

    def run() -> None:
        from ..api import sizes as analyse_sizes
        from ..inputs import parse_input
        from ..load import parse_args
        from ..render.sizes import render_sizes_json, render_sizes_text

        specs = [parse_input(text) for text in (input or ["1,3,224,224"])]
        report = analyse_sizes(spec, specs, axes=axis, layers=layers, args=parse_args(arg),
                               tracer=tracer.value, leaves=leaf or ())
        render = render_sizes_json if format is SizesFormat.json else render_sizes_text
        write_output(render(report, layers), output)

    guarded(run, traceback)
