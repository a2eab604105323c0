"""``cnnshape summary``: the per-layer table, or markdown, CSV or JSON; ``--verify`` adds a real pass."""
from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from .common import (
    EXIT_FAIL,
    Args,
    Depth,
    Format,
    Inputs,
    Leaves,
    Output,
    Spec,
    Traceback,
    Tracer,
    TracerOpt,
    Train,
    analyze_from_cli,
    check_outputs,
    guarded,
    model_file,
    parse_cli_args,
    parse_inputs,
    write_output,
)


class VerifyDtype(str, Enum):
    float16 = "float16"
    bfloat16 = "bfloat16"


def summary(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    depth: Depth = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    output: Output = None,
    tracer: TracerOpt = Tracer.auto,
    leaf: Leaves = None,
    train: Train = False,
    cross_check: Annotated[bool, typer.Option(
        "--cross-check", help="Also run torch's own meta kernel beside each of cnnshape's (conv, batch norm, "
        "element-wise, pooling, ...) and fail on any difference; slower.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Confirm every layer's shape and dtype with one real forward pass (random weights "
        "and inputs); exit 1 on any mismatch.")] = False,
    device: Annotated[str, typer.Option(
        "--device", help="Device for --verify: cpu, cuda, cuda:N, mps or auto.")] = "cpu",
    repeat: Annotated[int, typer.Option(
        "--repeat", min=1, help="Timed forward runs for --verify's median latency.")] = 10,
    dtype: Annotated[VerifyDtype | None, typer.Option(
        "--dtype", help="Cast the model and floating inputs to this dtype for --verify.")] = None,
    traceback: Traceback = False,
) -> None:
    """Per-layer output shapes, parameters, MACs/FLOPs and memory, with totals."""

    def run() -> Any:
        from ..render import formats

        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})

        report = analyze_from_cli(spec, input, arg, tracer, leaf, train, None if verify else depth, cross_check)
        if verify:
            report = _verified(report, spec, input, arg, leaf, train, device, repeat, dtype).collapse(depth)
        text = formats.render(report, format.value)
        if report.verification is not None and format is not Format.json:
            from ..render.verify import render_verification

            lines = render_verification(report.verification, format.value)
            if format is Format.csv:
                typer.echo(lines, err=True, nl=False)  # the CSV on stdout stays one table
            else:
                text = text.rstrip("\n") + "\n\n" + lines
        write_output(text, output)
        return report.verification

    verification = guarded(run, traceback, spec)
    if verification is not None and not verification.ok:
        raise typer.Exit(EXIT_FAIL)


def _verified(report: Any, spec: str, inputs: list[str] | None, args: list[str] | None,
              leaves: list[str] | None, train: bool, device: str, repeat: int,
              dtype: VerifyDtype | None) -> Any:
    """``report`` with the outcome of a real forward pass attached."""
    from dataclasses import replace

    from ..verify import verify

    result = verify(spec, parse_inputs(inputs), report, args=parse_cli_args(args), leaves=leaves or (), train=train,
                    device=device, dtype=dtype.value if dtype else None, repeat=repeat)
    return replace(report, verification=result)
