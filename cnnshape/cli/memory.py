"""``cnnshape memory``: the inference peak, a training step and the largest batch that fits,
without running the model; ``--verify`` puts a real run beside them."""
from __future__ import annotations

from typing import Annotated

import typer

from ..vocab import AMP_CHOICES, OPTIMIZERS, TABLE_OR_JSON
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
    choice,
    format_option,
    guarded,
    model_file,
    request_from_cli,
    write_output,
)


def memory(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    train: Annotated[bool, typer.Option(
        "--train", help="Also a training step: weights, gradients, optimizer state, what autograd saves, "
        "backward's transients.")] = False,
    optimizer: Annotated[str, choice(
        "--optimizer", OPTIMIZERS, "The optimizer of the training step (its state: none 0, momentum 1x, "
        "adam and adamw 2x the trainable parameters).")] = "adam",
    amp: Annotated[str | None, choice(
        "--amp", AMP_CHOICES,
        "Under torch.autocast to bfloat16 or float16 (fp32 master weights and gradients).")] = None,
    fits: Annotated[str | None, typer.Option(
        "--fits", metavar="SIZE", help="The largest batch whose peak fits in SIZE, e.g. 16GiB, 24GB.")] = None,
    layers: Annotated[bool, typer.Option("--layers", help="Also the live bytes after each layer.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Run the model for real (random weights and inputs) and print the measured peaks "
        "beside the estimates.")] = False,
    device: Annotated[str, typer.Option("--device", help="Device for --verify: cpu, cuda, cuda:N or auto.")] = "cpu",
    format: Annotated[str, format_option(TABLE_OR_JSON)] = "table",
    output: Output = None,
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """Peak memory of inference and of a training step, and the largest batch that fits."""

    def run() -> None:
        from ..memory_run import run_memory, verify_memory
        from ..render.memory import render_memory_json, render_memory_text
        from ..units import parse_bytes

        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})
        budget = None if fits is None else parse_bytes(fits, "--fits")
        request = request_from_cli(spec, input, arg, tracer, leaf)
        report = run_memory(request, train=train, optimizer=optimizer, amp=amp, fits=budget)
        if verify:
            report = verify_memory(request, report, device=device, optimizer=optimizer)
        text = render_memory_json(report) if format == "json" else render_memory_text(report, layers)
        write_output(text, output)

    guarded(run, traceback, spec, timeout)
