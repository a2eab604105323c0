"""``cnnshape rf``: the receptive field of every spatial layer, or the input box of one output unit."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import ConfigError
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


def _parse_at(at: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in at.split(","))
    except ValueError:
        raise ConfigError(f"--at {at!r}: give integer output indices separated by commas, e.g. 0,0") from None


def rf(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    layer: Annotated[str | None, typer.Option("--layer", help="Layer whose output unit to map back.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Output unit index, e.g. 3,4 (with --layer).")] = None,
    format: Annotated[str, format_option(TABLE_OR_JSON)] = "table",
    output: Output = None,
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """Receptive field (size, jump, start) of every spatial layer; --layer/--at: one unit's input box."""

    def run() -> None:
        if (layer is None) != (at is None):
            raise ConfigError("--layer and --at go together: e.g. --layer layer4 --at 3,3")
        index = _parse_at(at) if at is not None else None
        from ..query import unit_box
        from ..render.receptive_field import box_text, rf_json, rf_table

        check_outputs({"--output": output}, {"the model's source file": model_file(spec)})
        from ..api import analyze

        report = analyze(request_from_cli(spec, input, arg, tracer, leaf))
        if layer is not None and index is not None:
            box = unit_box(report, layer, index)
            text = json.dumps(box, indent=2) if format == "json" else box_text(box)
        else:
            text = rf_json(report) if format == "json" else rf_table(report)
        write_output(text, output)

    guarded(run, traceback, spec, timeout)
