"""``cnnshape compare A B [C ...]``: models side by side, totals with ratios to the first and the
cost per stage, as a table, markdown, JSON or a self-contained HTML page."""
from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import speaking
from ..vocab import COMPARE_ALIGNS, COMPARE_FORMATS
from .common import (
    FLAGS,
    Leaves,
    Output,
    Traceback,
    TracerOpt,
    Train,
    check_outputs,
    choice,
    fail,
    guarded,
    model_file,
    parse_cli_args,
    parse_inputs,
    write_output,
)

#: ``-o FILE`` without ``--format``: the file's extension picks the format
EXTENSIONS = {".html": "html", ".htm": "html", ".md": "markdown", ".json": "json"}


def output_format(fmt: str | None, output: str | None) -> str:
    """``--format``, else the format ``-o``'s extension names, else the table."""
    if fmt is not None:
        return fmt
    if output is not None:
        import os

        return EXTENSIONS.get(os.path.splitext(output)[1].lower(), "table")
    return "table"


def compare(
    specs: Annotated[list[str], typer.Argument(
        help="Two or more models, path/to/file.py:Name or package.module:Name; SPEC@SHAPE gives that model "
             "its own input (e.g. net.py:Net@1,3,227,227; repeat @SHAPE for a model with several inputs).",
        metavar="SPEC[@SHAPE]")],
    input: Annotated[list[str] | None, typer.Option(
        "--input", "-i", help="Input shape of every model that has no @SHAPE of its own, e.g. 1,3,224,224 "
        "(the default); repeat for models with several inputs.")] = None,
    arg: Annotated[list[str] | None, typer.Option(
        "--arg", "-a", help="Constructor/factory argument KEY=VALUE given to every model. Repeatable.")] = None,
    depth: Annotated[int, typer.Option(
        "--depth", "-d", min=1, help="Stages: the modules at this depth (1: the top-level modules).")] = 1,
    align: Annotated[str, choice(
        "--align", COMPARE_ALIGNS, "Align the stages by module name (a name the models share is one row) "
        "or by position (the i-th stage of each model).")] = "name",
    label: Annotated[list[str] | None, typer.Option(
        "--label", "-l", help="Column name of each model, in order (default: the class name). Repeat once per model.")
    ] = None,
    format: Annotated[str | None, choice(
        "--format", COMPARE_FORMATS, "Output format (default: from -o's extension, .html .md .json, else table).",
        "-f")] = None,
    output: Output = None,
    keep_going: Annotated[bool, typer.Option(
        "--keep-going", help="When a model fails, still compare the others (at least two), list the failures "
        "under the notes and on stderr, and exit 2.")] = False,
    sizes: Annotated[bool, typer.Option(
        "--sizes/--no-sizes", help="Find each model's minimum input size (a few more traces per model).")] = True,
    tracer: TracerOpt = "auto",
    leaf: Leaves = None,
    train: Train = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", metavar="SECONDS", help="Stop with exit 2, naming the line it was running, when the models' "
        "code (import, construction, forward; all the models together) takes longer than this.")] = None,
    traceback: Traceback = False,
) -> None:
    """Compare models side by side: params, MACs, FLOPs, memory, output, receptive field and minimum
    input size with ratios to the first model, and where each model's cost goes, stage by stage."""
    from ..comparison import split_spec

    fmt = output_format(format, output)

    def run() -> Any:
        with speaking({**FLAGS, "models": "SPEC", "labels": "--label", "align": "--align"}):
            from ..api import compare as run_compare
            from ..errors import ConfigError
            from ..render import compare as render

            if len(specs) < 2:
                raise ConfigError(f"compare needs at least two models, got {len(specs)}: give SPEC SPEC [SPEC ...]")
            saved = next((s for s in specs if s.lower().endswith(".json") and ":" not in s), None)
            if saved is not None:
                raise ConfigError(f"{saved} is a JSON file: compare analyses models from their code (SPEC is "
                                  "file.py:Name); `cnnshape diff old.json new.json` compares two saved reports")
            sources = {f"the source file of {s}": model_file(split_spec(s)[0]) for s in specs}
            check_outputs({"--output": output}, sources)
            comparison = run_compare(
                specs, parse_inputs(input) if input else None, labels=label, depth=depth, align=align, sizes=sizes,
                args=parse_cli_args(arg), tracer=tracer, leaves=leaf or (), train=train, keep_going=keep_going)
            if fmt == "html":
                from ..render.compare_html import render_compare_html

                text = render_compare_html(comparison)
            else:
                text = {"table": render.render_compare_table, "markdown": render.render_compare_markdown,
                        "json": render.render_compare_json}[fmt](comparison)
            write_output(text, output)
            return comparison

    comparison = guarded(run, traceback, specs[0].partition("@")[0] if specs else None, timeout, several=True)
    if comparison.failed:  # the others are compared; the run is still a failure
        fail("\n".join(f.text(comparison.given) for f in comparison.failed))
