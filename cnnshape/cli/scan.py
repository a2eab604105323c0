"""``cnnshape scan``: many models (specs, a specs file, or a search space) in parallel workers,
one JSON record each streamed to a resumable ``-o results.jsonl``; a table or CSV at the end.

Exit codes: 0 every model analysed and within its budgets, 1 some model failed a budget or could
not be analysed (its record says why), 2 the scan itself is misconfigured.
"""
from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from ..vocab import SCAN_FORMATS
from .common import EXIT_FAIL, Args, Inputs, Traceback, TracerOpt, check_outputs, choice, guarded, write_output


def _opt(flag: str, help: str) -> Any:
    return typer.Option(flag, help=help)


def scan(
    specs: Annotated[list[str] | None, typer.Argument(
        help="Models: path/to/file.py:Name or package.module:Name, each named by its spec.")] = None,
    specs_file: Annotated[str | None, _opt(
        "--specs-file", "A file of models, one a line: SPEC [--input SHAPE]... [--arg K=V]... [--name NAME]; "
        "# starts a comment.")] = None,
    space: Annotated[str | None, _opt(
        "--space", "A search space: space.py:candidates, a function yielding (name, model_or_factory_or_spec"
        "[, inputs]), e.g. examples/nas201.py:candidates.")] = None,
    input: Inputs = None,
    arg: Args = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", help="Append one JSON record per model to this JSONL file as each finishes; models "
        "already in it are skipped (resume).")] = None,
    format: Annotated[str | None, choice(
        "--format", SCAN_FORMATS, "Summary printed at the end (default: table without -o, none with it).",
        "-f")] = None,
    only_passing: Annotated[bool, _opt("--only-passing", "Keep failing and broken models out of the summary.")]
    = False,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Worker processes (default: the cores); each imports torch once.")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", metavar="SECONDS", help="Record a model that takes longer than this as a timeout, "
        "and go on.")] = None,
    cluster: Annotated[str | None, _opt(
        "--cluster", "Run on a Dask scheduler, e.g. tcp://host:8786 (pip install \"cnnshape[cluster]\").")] = None,
    max_params: Annotated[str | None, _opt("--max-params", "Parameter budget, e.g. 5M.")] = None,
    max_macs: Annotated[str | None, _opt("--max-macs", "MAC budget, e.g. 600M.")] = None,
    max_activation_memory: Annotated[str | None, _opt(
        "--max-activation-memory", "Activation memory budget, e.g. 300MiB.")] = None,
    max_param_memory: Annotated[str | None, _opt("--max-param-memory", "Parameter memory budget, e.g. 20MB.")]
    = None,
    max_inference_memory: Annotated[str | None, _opt(
        "--max-inference-memory", "Inference peak memory budget (cnnshape memory), e.g. 2GiB; runs the memory "
        "analysis for every model.")] = None,
    max_train_memory: Annotated[str | None, _opt(
        "--max-train-memory", "Training step peak memory budget, with Adam (cnnshape memory --train), e.g. 8GiB; "
        "runs the memory analysis with a training step for every model.")] = None,
    tracer: TracerOpt = "auto",
    no_minimum: Annotated[bool, _opt(
        "--no-minimum", "Skip the smallest accepted input size (a quarter of the time on small nets).")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Progress bar (default: on a terminal).")] = None,
    traceback: Traceback = False,
) -> None:
    """Analyse many models in parallel: one JSON record each (params, MACs, outputs, minimum input
    size, pass/fail against the budgets), resumable; broken, hanging or crashing models are recorded."""

    def run() -> int:
        from ..check import Budget
        from ..config import BUDGET_KEYS
        from ..errors import ConfigError
        from ..render import scan as render
        from ..scanner import sources
        from ..scanner.engine import iter_records, run_scan
        from ..scanner.settings import ScanSettings
        from .common import parse_cli_args
        from .timeout import check_seconds

        if not specs and specs_file is None and space is None:
            raise ConfigError("nothing to scan: give SPECs, --specs-file FILE or --space FILE.py:FUNCTION")
        flags = {"max-params": max_params, "max-macs": max_macs,
                 "max-activation-memory": max_activation_memory, "max-param-memory": max_param_memory,
                 "max-inference-memory": max_inference_memory, "max-train-memory": max_train_memory}
        budgets = tuple(Budget(fig, parse(flags[key], f"--{key}"))
                        for key, (fig, parse) in BUDGET_KEYS.items() if flags.get(key) is not None)
        settings = ScanSettings(budgets, check_seconds(timeout), tracer, not no_minimum)
        keep = {"a specs file": specs_file, "the space's file": sources.space_file(space) if space else None}
        keep.update({f"the source file of {s}": sources.space_file(s) for s in specs or []})
        check_outputs({"--output": output}, keep)
        args = parse_cli_args(arg)
        tasks: list[Any] = []
        if specs:
            tasks += sources.from_specs(specs, input, args)
        if specs_file is not None:
            tasks += sources.from_file(specs_file, input, args)
        if space is not None:
            if arg:
                raise ConfigError("--arg applies to SPECs and --specs-file lines; a space builds its own models")
            tasks += sources.from_space(space, input)
        show = sys.stderr.isatty() if progress is None else progress
        new: list[Any] = []
        records = run_scan(tasks, settings, output=output, jobs=jobs, cluster=cluster, progress=show,
                           on_record=new.append)
        fmt = format or ("none" if output else "table")
        shown = list(iter_records(records, only_passing))
        if fmt == "table":
            write_output(render.render_table(shown), None)
        elif fmt == "csv":
            write_output(render.render_csv(shown), None)
        typer.echo(render.render_counts(records, len(new), output), err=True)
        return EXIT_FAIL if any(r.status != "pass" for r in records) else 0

    code = guarded(run, traceback)
    if code:
        raise typer.Exit(code)
