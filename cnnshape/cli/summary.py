"""``cnnshape summary``: the per-layer table, or markdown, CSV or JSON; ``--verify`` adds a real pass."""
from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import ConfigError
from ..vocab import REPORT_FORMATS, VERIFY_DTYPES
from .common import (
    EXIT_FAIL,
    Args,
    Depth,
    Inputs,
    Leaves,
    Output,
    Spec,
    Timeout,
    Traceback,
    TracerOpt,
    Train,
    check_outputs,
    choice,
    format_option,
    guarded,
    model_file,
    request_from_cli,
    write_output,
)


def summary(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    depth: Depth = None,
    format: Annotated[str, format_option(REPORT_FORMATS)] = "table",
    output: Output = None,
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    train: Train = False,
    by_op: Annotated[bool, typer.Option(
        "--by-op", help="Also give MACs and FLOPs per ATen op (table and markdown; JSON always has by_op).")] = False,
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
    dtype: Annotated[str | None, choice(
        "--dtype", VERIFY_DTYPES, "Cast the model and floating inputs to this dtype for --verify.")] = None,
    memory: Annotated[bool, typer.Option(
        "--memory", help="Also the inference peak memory (and with --train a training step with Adam) as "
        "footer lines and in JSON; `cnnshape memory` has the options.")] = False,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """Per-layer output shapes, parameters, MACs/FLOPs and memory, with totals."""

    def run() -> Any:
        from ..render import formats

        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})
        if by_op and format == "csv":
            raise ConfigError("--by-op adds a second table, which a CSV cannot hold: use --format table, "
                              "markdown or json (JSON always has by_op)")

        from dataclasses import replace

        from ..api import analyze
        from ..api import verify as verify_report

        request = request_from_cli(spec, input, arg, tracer, leaf, train, cross_check)
        report = analyze(request, depth=None if verify else depth, memory=memory)
        if verify:
            verification = verify_report(request, report, device=device, dtype=dtype, repeat=repeat)
            report = replace(report, verification=verification).collapse(depth)
        text = formats.render(report, format)
        if by_op and format in ("table", "markdown"):
            from ..render.table import render_by_op

            text = text.rstrip("\n") + "\n\n" + render_by_op(report, markdown=format == "markdown") + "\n"
        if report.verification is not None and format != "json":
            from ..render.verify import render_verification

            lines = render_verification(report.verification, format)
            if format == "csv":
                typer.echo(lines, err=True, nl=False)  # the CSV on stdout stays one table
            else:
                text = text.rstrip("\n") + "\n\n" + lines
        write_output(text, output)
        return report.verification

    verification = guarded(run, traceback, spec, timeout)
    if verification is not None and not verification.ok:
        raise typer.Exit(EXIT_FAIL)

