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
    check_outputs,
    guarded,
    model_file,
    parse_cli_args,
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
        from ..render.sizes import render_sizes_json, render_sizes_text

        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})
        specs = parse_inputs(input)
        _check_studied_sizes(specs[0].shape, axis)
        report = analyse_sizes(spec, specs, axes=axis, layers=layers, args=parse_cli_args(arg),
                               tracer=tracer.value, leaves=leaf or ())
        render = render_sizes_json if format is TableOrJson.json else render_sizes_text
        write_output(render(report, layers), output)

    guarded(run, traceback, spec)


def _check_studied_sizes(shape: tuple[int, ...], axes: list[int] | None) -> None:
    """The studied sizes of the first input must lie in the range `sizes` evaluates."""
    from ..analyse.sizes import MAX_UP_TO, default_axes
    from ..errors import ConfigError

    studied = [a for a in (default_axes(shape) if axes is None else axes) if 0 <= a < len(shape)]
    big = [a for a in studied if shape[a] > MAX_UP_TO]
    if big:
        a = big[0]
        example = ",".join(str(224 if i in big else d) for i, d in enumerate(shape))
        raise ConfigError(
            f"--input {','.join(map(str, shape))}: dim {a} is {shape[a]:,}, above {MAX_UP_TO:,}, the largest "
            f"size `cnnshape sizes` studies. Give a working example within that range, e.g. --input "
            f"{example}: the answer covers every size up to {MAX_UP_TO:,}; `cnnshape summary` gives the "
            f"figures at {shape[a]:,}."
        )
