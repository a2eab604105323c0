"""``cnnshape check``: budgets, expected output shapes and baselines, with CI-native output.

Exit codes: 0 everything within budget, 1 a budget exceeded / an expectation or growth limit
failed, 2 the configuration is wrong or a model could not be loaded or analysed.
"""
from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import DEFAULT_INPUT, EXIT_FAIL, Args, Inputs, Traceback, Tracer, TracerOpt, guarded, write_output


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"
    junit = "junit"


def _opt(flag: str, help: str) -> Any:
    return typer.Option(flag, help=help)


def check(
    spec: Annotated[str | None, typer.Argument(
        help="Model: path/to/file.py:Name. Without it, the models configured in pyproject.toml "
             "([tool.cnnshape.models.<name>]) or cnnshape.toml are checked.")] = None,
    input: Inputs = None,
    arg: Args = None,
    tracer: TracerOpt = Tracer.auto,
    max_params: Annotated[str | None, _opt("--max-params", "Parameter budget, e.g. 25M.")] = None,
    max_macs: Annotated[str | None, _opt("--max-macs", "MAC budget, e.g. 4.5G.")] = None,
    max_activation_memory: Annotated[str | None, _opt(
        "--max-activation-memory", "Activation memory budget, e.g. 300MiB.")] = None,
    max_param_memory: Annotated[str | None, _opt(
        "--max-param-memory", "Parameter memory budget, e.g. 100MB.")] = None,
    expect_output: Annotated[list[str] | None, _opt(
        "--expect-output", "Expected output shape, e.g. 1,1000. Repeat for several outputs.")] = None,
    config: Annotated[Path | None, _opt(
        "--config", "Config file (pyproject.toml or cnnshape.toml) to read the models from.")] = None,
    baseline: Annotated[str | None, _opt("--baseline", "Compare with this baseline file.")] = None,
    max_growth: Annotated[str | None, _opt(
        "--max-growth", "Fail when a figure grows more than this over the baseline, e.g. 5%.")] = None,
    write_baseline: Annotated[str | None, _opt(
        "--write-baseline", "Record the current figures in this file.")] = None,
    format: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format.")] = CheckFormat.text,
    junit_file: Annotated[str | None, _opt("--junit-file", "Also write JUnit XML to this file.")] = None,
    traceback: Traceback = False,
) -> None:
    """Fail (exit 1) when a model exceeds its parameter, MAC or memory budget, its output shape
    changes, or it grew beyond --max-growth over a baseline."""

    def run() -> int:
        from .. import check as chk
        from ..config import BUDGET_KEYS, ModelConfig, find_config, load_config, parse_shapes
        from ..errors import ConfigError
        from ..files import atomic_write_text, check_writable
        from ..render import check as render
        from ..units import parse_percent
        from .isolation import after_run

        flags = {"max-params": max_params, "max-macs": max_macs,
                 "max-activation-memory": max_activation_memory, "max-param-memory": max_param_memory}
        if spec is not None:
            if config is not None:
                raise ConfigError("give either a SPEC or --config, not both")
            budgets = tuple(chk.Budget(fig, parse(flags[key], f"--{key}"))
                            for key, (fig, parse) in BUDGET_KEYS.items() if flags[key] is not None)
            expect = parse_shapes(expect_output, "--expect-output") if expect_output else None
            inputs = tuple(input or [DEFAULT_INPUT])
            models: tuple[ModelConfig, ...] = (ModelConfig(spec, spec, inputs, {}, tracer.value, budgets, expect),)
            cli_args = arg
        else:
            given = [f"--{k}" for k, v in flags.items() if v is not None]
            given += ["--expect-output"] * bool(expect_output) + ["--input"] * bool(input) + ["--arg"] * bool(arg)
            if given:
                raise ConfigError(f"{given[0]} applies to a SPEC given on the command line; "
                                  "for configured models put it in the config file")
            models = load_config(config if config is not None else find_config(Path(".")))
            cli_args = None
        growth = chk.check_growth(parse_percent(max_growth, "--max-growth")) if max_growth is not None else None
        if growth is not None and baseline is None:
            raise ConfigError("--max-growth needs --baseline FILE to compare with")
        old = _read_baseline(baseline, chk) if baseline is not None else {}
        check_writable(write_baseline, "--write-baseline")
        check_writable(junit_file, "--junit-file")

        snaps = [_analyse(m, i, len(models), cli_args) for i, m in enumerate(models, 1)]
        results: list[chk.Result] = []
        comparisons: list[chk.Comparison] = []
        for m, snap in zip(models, snaps):
            results += chk.check_budgets(snap, m.budgets, m.expect_output)
            if baseline is not None:
                if m.name in old:
                    comparisons.append(chk.compare(old[m.name], snap, growth))
                    results += comparisons[-1].results
                else:
                    typer.echo(f"note: {m.name} is not in {baseline}; not compared "
                               "(record it with --write-baseline)", err=True)
        if write_baseline is not None:
            path, data = write_baseline, json.dumps(chk.baseline_to_dict(snaps), indent=2) + "\n"

            def record() -> None:
                atomic_write_text(path, data, "--write-baseline")
                typer.echo(f"wrote baseline for {len(snaps)} model(s) to {path}", err=True)

            after_run(record)
        if junit_file is not None:
            write_output(render.render_junit(results), junit_file, "--junit-file")
        tables = "\n\n".join(render.render_comparison(c) for c in comparisons)
        if format is CheckFormat.json:
            text = render.render_json(results, comparisons)
        elif format is CheckFormat.junit and junit_file is None:
            text = render.render_junit(results)
        elif format is CheckFormat.github:
            text = "\n\n".join(t for t in (render.render_github(results), tables) if t)
        else:
            text = "\n\n".join(t for t in (render.render_text(results), tables) if t)
        write_output(text, None)
        return EXIT_FAIL if chk.failed(results) else 0

    code = guarded(run, traceback, spec)
    if code:
        raise typer.Exit(code)


def _read_baseline(path: str, chk: Any) -> dict[str, Any]:
    from ..files import read_json

    return chk.baseline_from_dict(read_json(path, "baseline", "Record one with --write-baseline FILE."), path)


def _analyse(m: Any, index: int, total: int, cli_args: list[str] | None) -> Any:
    """Analyse one configured model; load/analysis errors name the model (exit 2)."""
    from ..api import analyze
    from ..check import snapshot
    from ..errors import CnnshapeError
    from .common import parse_cli_args
    from .isolation import argv_for

    if total > 1:
        typer.echo(f"[{index}/{total}] {m.name}: {m.model} ({', '.join(m.inputs)})", err=True)
    try:
        with argv_for(m.model):
            report = analyze(m.model, list(m.inputs), args=m.args or parse_cli_args(cli_args), tracer=m.tracer)
    except CnnshapeError as e:
        if total > 1:
            raise type(e)(f"{m.name}: {e}") from e
        raise
    return snapshot(report, m.name)
