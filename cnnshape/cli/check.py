"""``cnnshape check``: budgets, expected output shapes and baselines, with CI-native output.

Exit codes: 0 everything within budget, 1 a budget exceeded / an expectation or growth limit
failed, 2 the configuration is wrong or a model could not be loaded or analysed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..vocab import CHECK_FORMATS, DEFAULT_INPUT
from .common import (
    EXIT_FAIL,
    Args,
    Inputs,
    Timeout,
    Traceback,
    TracerOpt,
    check_outputs,
    format_option,
    guarded,
    model_file,
    write_output,
)

if TYPE_CHECKING:
    from ..check import Snapshot
    from ..config import ModelConfig
    from ..report import Report


def _opt(flag: str, help: str) -> Any:
    return typer.Option(flag, help=help)


def check(
    spec: Annotated[str | None, typer.Argument(
        help="Model: path/to/file.py:Name. Without it, the models configured in pyproject.toml "
             "([tool.cnnshape.models.<name>]) or cnnshape.toml are checked.")] = None,
    input: Inputs = None,
    arg: Args = None,
    tracer: TracerOpt = "auto",
    max_params: Annotated[str | None, _opt("--max-params", "Parameter budget, e.g. 25M.")] = None,
    max_macs: Annotated[str | None, _opt("--max-macs", "MAC budget, e.g. 4.5G.")] = None,
    max_activation_memory: Annotated[str | None, _opt(
        "--max-activation-memory", "Activation memory budget, e.g. 300MiB.")] = None,
    max_param_memory: Annotated[str | None, _opt(
        "--max-param-memory", "Parameter memory budget, e.g. 100MB.")] = None,
    max_inference_memory: Annotated[str | None, _opt(
        "--max-inference-memory", "Inference peak memory budget (cnnshape memory), e.g. 2GiB.")] = None,
    max_train_memory: Annotated[str | None, _opt(
        "--max-train-memory", "Training step peak memory budget, with Adam (cnnshape memory --train), "
        "e.g. 16GiB.")] = None,
    expect_output: Annotated[list[str] | None, _opt(
        "--expect-output", "Expected output shape, e.g. 1,1000. Repeat for several outputs.")] = None,
    config: Annotated[Path | None, _opt(
        "--config", "Config file (pyproject.toml or cnnshape.toml) to read the models from.")] = None,
    baseline: Annotated[str | None, _opt("--baseline", "Compare with this baseline file.")] = None,
    max_growth: Annotated[str | None, _opt(
        "--max-growth", "Fail when a figure grows more than this over the baseline, e.g. 5%.")] = None,
    write_baseline: Annotated[str | None, _opt(
        "--write-baseline", "Record the current figures in this file.")] = None,
    format: Annotated[str, format_option(CHECK_FORMATS)] = "text",
    junit_file: Annotated[str | None, _opt("--junit-file", "Also write JUnit XML to this file.")] = None,
    timeout: Timeout = None,
    traceback: Traceback = False,
) -> None:
    """Fail (exit 1) when a model exceeds its parameter, MAC or memory budget, its output shape
    changes, or it grew beyond --max-growth over a baseline."""

    def run() -> int:
        from .. import check as chk
        from ..config import BUDGET_KEYS, ModelConfig, find_config, load_config, parse_shapes
        from ..errors import ConfigError
        from ..files import atomic_write_text
        from ..render import check as render
        from ..units import parse_percent
        from .isolation import after_run
        from .timeout import check_seconds

        flags = {"max-params": max_params, "max-macs": max_macs,
                 "max-activation-memory": max_activation_memory, "max-param-memory": max_param_memory,
                 "max-inference-memory": max_inference_memory, "max-train-memory": max_train_memory}
        if spec is not None:
            if config is not None:
                raise ConfigError("give either a SPEC or --config, not both")
            budgets = tuple(chk.Budget(fig, parse(flags[key], f"--{key}"))
                            for key, (fig, parse) in BUDGET_KEYS.items() if flags[key] is not None)
            expect = parse_shapes(expect_output, "--expect-output") if expect_output else None
            inputs = tuple(input or [DEFAULT_INPUT])
            models: tuple[ModelConfig, ...] = (ModelConfig(spec, spec, inputs, {}, tracer, budgets, expect),)
            cli_args, config_path = arg, None
        else:
            given = [f"--{k}" for k, v in flags.items() if v is not None]
            given += ["--expect-output"] * bool(expect_output) + ["--input"] * bool(input) + ["--arg"] * bool(arg)
            if given:
                raise ConfigError(f"{given[0]} applies to a SPEC given on the command line; "
                                  "for configured models put it in the config file")
            config_path = config if config is not None else find_config(Path("."))
            models = load_config(config_path)
            cli_args = None
        check_seconds(timeout)  # before a possibly long analysis
        growth = chk.check_growth(parse_percent(max_growth, "--max-growth")) if max_growth is not None else None
        if growth is not None and baseline is None:
            raise ConfigError("--max-growth needs --baseline FILE to compare with")
        old = _read_baseline(baseline) if baseline is not None else {}
        keep = {f"the source file of {m.name}": model_file(m.model) for m in models}
        keep.update({"the config file": str(config_path) if config_path is not None else None,
                     "the --baseline file": baseline})
        check_outputs({"--junit-file": junit_file}, keep)
        keep.pop("the --baseline file")  # --write-baseline may update the baseline it compares with
        check_outputs({"--write-baseline": write_baseline, "--junit-file": junit_file}, keep)

        def nothing_to_check(names: list[str]) -> ConfigError:
            keys = [*BUDGET_KEYS, "expect-output"]
            missing = (f"give a budget or an expectation ({', '.join('--' + k for k in keys)})" if spec is not None
                       else f"{'its table' if len(names) == 1 else 'their tables'} in the config file "
                            f"{'has' if len(names) == 1 else 'have'} none of {', '.join(keys)}")
            tail = f", and {'it is' if len(names) == 1 else 'they are'} not in {baseline}" \
                if baseline is not None else " or --baseline FILE"
            return ConfigError(f"nothing to check for {', '.join(names)}: {missing}{tail}. A check that "
                               "checks nothing does not pass.")

        if baseline is None and write_baseline is None and not any(m.budgets or m.expect_output for m in models):
            raise nothing_to_check([m.name for m in models])  # before a possibly long analysis
        snaps = [_analyse(m, i, len(models), cli_args, timeout) for i, m in enumerate(models, 1)]
        results: list[chk.Result] = []
        comparisons: list[chk.Comparison] = []
        unchecked = []
        for m, snap in zip(models, snaps):
            own = chk.check_budgets(snap, m.budgets, m.expect_output)
            results += own
            before = _in_baseline(m.name, old, spec is not None) if baseline is not None else None
            if before is not None:
                comparisons.append(chk.compare(before, snap, growth))
                results += comparisons[-1].results
            elif baseline is not None:
                typer.echo(f"note: {m.name} is not in {baseline}; not compared "
                           "(record it with --write-baseline)", err=True)
            if not own and before is None:
                unchecked.append(m.name)
        if len(unchecked) == len(models) and write_baseline is None:
            raise nothing_to_check(unchecked)
        for name in unchecked if len(models) > 1 else ():
            typer.echo(f"note: nothing checked for {name} (no budget, expect-output or baseline entry)", err=True)
        if write_baseline is not None:
            path, data = write_baseline, json.dumps(chk.baseline_to_dict(snaps), indent=2) + "\n"

            def record() -> None:
                atomic_write_text(path, data, "--write-baseline")
                typer.echo(f"wrote baseline for {len(snaps)} model(s) to {path}", err=True)

            after_run(record)
        if junit_file is not None:
            write_output(render.render_junit(results), junit_file, "--junit-file")
        tables = "\n\n".join(render.render_comparison(c) for c in comparisons)
        if format == "json":
            text = render.render_json(results, comparisons)
        elif format == "junit":
            text = render.render_junit(results)
        elif format == "github":
            text = "\n\n".join(t for t in (render.render_github(results), tables) if t)
        else:
            text = "\n\n".join(t for t in (render.render_text(results), tables) if t)
        write_output(text, None)
        return EXIT_FAIL if chk.failed(results) else 0

    code = guarded(run, traceback, spec)
    if code:
        raise typer.Exit(code)


def _in_baseline(name: str, old: dict[str, Snapshot], is_spec: bool) -> Snapshot | None:
    """The baseline snapshot recorded for model ``name``; for a SPEC given on the command line
    also one recorded under another spelling of the same file (``./net.py:Net``, an absolute
    path), relative paths being relative to the current folder."""
    if name in old or not is_spec:
        return old.get(name)
    same = [snap for key, snap in old.items() if _spec_key(key) == _spec_key(name)]
    return same[0] if len(same) == 1 else None


def _spec_key(spec: str) -> tuple[str, str]:
    from ..request import names_file

    where, _, attr = spec.rpartition(":")
    if names_file(where):
        where = os.path.normcase(os.path.realpath(where))
    return where, attr


def _read_baseline(path: str) -> dict[str, Snapshot]:
    from ..check import baseline_from_dict
    from ..files import read_json

    return baseline_from_dict(read_json(path, "baseline", "Record one with --write-baseline FILE."), path)


def _analyse(m: ModelConfig, index: int, total: int, cli_args: list[str] | None,
             timeout: float | None = None) -> Snapshot:
    """Analyse one configured model within ``timeout`` seconds; load/analysis errors name the
    model (exit 2)."""
    from ..api import analyze
    from ..check import snapshot
    from ..errors import CnnshapeError
    from .common import parse_cli_args
    from .isolation import model_scope
    from .timeout import time_limit

    if total > 1:
        typer.echo(f"[{index}/{total}] {m.name}: {m.model} ({', '.join(m.inputs)})", err=True)
    try:
        what = f"the code of {m.name}" if total > 1 else "the model's code"
        with model_scope(m.model), time_limit(timeout, what):
            report = analyze(m.model, list(m.inputs), args=m.args or parse_cli_args(cli_args), tracer=m.tracer)
            report = _with_memory(m, report, cli_args)
    except CnnshapeError as e:
        if total > 1:
            raise type(e)(f"{m.name}: {e}") from e
        raise
    return snapshot(report, m.name)


def _with_memory(m: ModelConfig, report: Report, cli_args: list[str] | None) -> Report:
    """``report`` with the memory figures its budgets ask for (a training step with Adam for
    ``max-train-memory``)."""
    from dataclasses import replace

    from ..check import MEMORY_FIGURES
    from ..memory_run import run_memory
    from ..request import Request
    from .common import parse_cli_args

    wanted = {b.figure for b in m.budgets} & set(MEMORY_FIGURES)
    if not wanted:
        return report
    request = Request.of(m.model, list(m.inputs), args=m.args or parse_cli_args(cli_args), tracer=m.tracer)
    return replace(report, memory=run_memory(request, train="train_memory" in wanted))
