"""``cnnshape sizes``: which input sizes the model accepts, and output sizes as formulas."""
from __future__ import annotations

from typing import Annotated

import typer

from ..vocab import TABLE_OR_JSON
from .common import (
    Args,
    Inputs,
    Leaves,
    Output,
    Spec,
    Timeout,
    Traceback,
    TracerOpt,
    check_outputs,
    format_option,
    guarded,
    model_file,
    request_from_cli,
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
    symbolic: Annotated[bool, typer.Option(
        "--symbolic/--no-symbolic", help="Let torch's symbolic shapes answer the axes the layer arithmetic "
        "cannot characterise (slower; default on).")] = True,
    arg: Args = None,
    format: Annotated[str, format_option(TABLE_OR_JSON)] = "table",
    output: Output = None,
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """Minimum and accepted input sizes per axis, and output sizes as formulas of the input size."""

    def run() -> None:
        from ..pipeline import run_sizes
        from ..render.sizes import render_sizes_json, render_sizes_text

        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})
        request = request_from_cli(spec, input, arg, tracer, leaf)
        _check_studied_sizes(request.inputs[0].shape, axis)
        report = run_sizes(request, axis, layers, symbolic)
        render = render_sizes_json if format == "json" else render_sizes_text
        write_output(render(report, layers), output)

    guarded(run, traceback, spec, timeout)


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
