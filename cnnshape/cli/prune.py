"""``cnnshape prune``: what structured channel pruning would do, before anyone prunes."""
from __future__ import annotations

from typing import Annotated, Any

import typer

from ..vocab import TABLE_OR_JSON
from .common import (
    Args,
    Depth,
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

#: API parameter -> flag, for the messages of this command
PRUNE_FLAGS = {"ratio": "--ratio", "ratios": "--ratios", "round_to": "--round-to", "layers": "--layers",
               "keep": "--keep"}


def prune(
    spec: Spec,
    input: Inputs = None,
    arg: Args = None,
    ratio: Annotated[float | None, typer.Option(
        "--ratio", "-r", help="Share of each group's channels to remove, 0 <= RATIO < 1 (default 0.5; "
        "0 when --ratios is given).")] = None,
    ratios: Annotated[str | None, typer.Option(
        "--ratios", metavar="FILE", help='Per-layer ratios: a JSON object or TOML table {"layer pattern": ratio}; '
        "a group takes the first pattern its producing layer matches, else --ratio.")] = None,
    layers: Annotated[list[str] | None, typer.Option(
        "--layers", help="Prune only the groups made by layers matching this pattern (fnmatch, e.g. 'layer3.*'). "
        "Repeatable.")] = None,
    keep: Annotated[list[str] | None, typer.Option(
        "--keep", help="Leave whole the groups made (or normalised) by a layer matching this pattern. "
        "Repeatable.")] = None,
    round_to: Annotated[int, typer.Option(
        "--round-to", min=1, help="Kept channels of each pruned group are a multiple of this (e.g. 8).")] = 1,
    groups: Annotated[bool, typer.Option(
        "--groups", help="List every dependency group with its member layers and channel counts.")] = False,
    prune_outputs: Annotated[bool, typer.Option(
        "--prune-outputs", help="Also prune the channels of the model's outputs (classifier classes, a last "
        "conv's maps); kept by default.")] = False,
    all_layers: Annotated[bool, typer.Option("--all-layers", help="Show every layer, not only those that change.")]
    = False,
    depth: Depth = None,
    format: Annotated[str, format_option(TABLE_OR_JSON)] = "table",
    output: Output = None,
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """Pruning what-if: dependency groups, pruned channel counts, and params/MACs/memory side by side."""

    def run() -> Any:
        from ..api import prune_plan
        from ..errors import speaking
        from ..render.prune import render_prune_json, render_prune_text
        from .common import FLAGS

        check_outputs({"--output": output}, {"the model's source file": model_file(spec),
                                             "the ratios file": ratios})
        request = request_from_cli(spec, input, arg, tracer, leaf)
        with speaking({**FLAGS, **PRUNE_FLAGS}):
            plan = prune_plan(request, ratio=ratio, ratios=ratios, layers=layers or (), keep=keep or (),
                              round_to=round_to, prune_outputs=prune_outputs)
        plan = plan.collapse(depth)
        text = render_prune_json(plan) if format == "json" else render_prune_text(plan, groups, all_layers)
        write_output(text, output)

    guarded(run, traceback, spec, timeout)
