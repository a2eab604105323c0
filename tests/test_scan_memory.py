"""The memory budgets of ``cnnshape scan`` (``--max-inference-memory``, ``--max-train-memory``):
the memory analysis runs for them only, and the record holds its peaks. The worker's analysis
runs in this process (``analyse_task``); one test goes through the CLI and a worker process."""
from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cnnshape.cli import app
from cnnshape.errors import ConfigError
from cnnshape.inputs import InputSpec
from cnnshape.memory_measure import measure_inference, measure_training
from cnnshape.render.scan import render_csv, render_table
from cnnshape.scanner import sources
from cnnshape.scanner.records import ScanRecord
from cnnshape.scanner.settings import ScanSettings, budgets_from
from cnnshape.scanner.worker import analyse_task
from cnnshape.units import binary_bytes

SHAPE = (2, 8, 16, 16)
#: one activation 2·8·16·16 fp32 = 16,384 B (the input is one more); weights 4 convs ·
#: (8·8·9 + 8) · 4 B = 9,344 B; from the second conv on a layer's input and output are alive at
#: once: peak = weights + input + two activations = 9,344 + 16,384 + 32,768 = 58,496 B
PEAK = 58_496
#: the estimate of a training step may differ from torch's measured one by this fraction (as in
#: tests/test_memory.py)
TOLERANCE = 0.05


def chain() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(4)])


def record(**limits: int | str) -> ScanRecord:
    (task,) = sources.from_objects([("chain", chain(), SHAPE)])
    return analyse_task(task, ScanSettings(budgets_from(limits)))


def test_inference_budget_at_its_boundary() -> None:
    # torch's own run peaks where the closed form says
    assert measure_inference(chain(), (InputSpec(SHAPE),)).peak_bytes == PEAK
    within = record(inference_memory=PEAK)
    assert within.status == "pass" and within.memory == (("inference_memory", PEAK),)
    over = record(inference_memory=PEAK - 1)
    assert over.status == "fail"
    assert [(v.figure, v.value, v.limit) for v in over.violations] == [("inference_memory", PEAK, PEAK - 1)]
    assert over.to_dict()["memory"] == {"inference_memory": PEAK}


def test_train_budget_takes_a_training_step_with_adam() -> None:
    measured = measure_training(copy.deepcopy(chain()), (InputSpec(SHAPE),), "adam").peak_bytes
    r = record(train_memory="1KiB")
    figures = dict(r.memory or ())
    assert abs(figures["train_memory"] - measured) <= TOLERANCE * measured, (figures, measured)
    assert figures["inference_memory"] == PEAK  # the training run also gives the inference peak
    assert r.status == "fail" and [v.figure for v in r.violations] == ["train_memory"]
    assert r.violations[0].value == figures["train_memory"] > 1024


def test_without_a_memory_budget_the_analysis_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnshape.memory_run

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the memory analysis ran without a memory budget")

    monkeypatch.setattr(cnnshape.memory_run, "run_memory", refuse)
    r = record(params=10**6)
    assert r.status == "pass" and r.memory is None
    assert "memory" not in r.to_dict()  # the records of a scan without memory budgets are as they were


def test_a_failing_memory_analysis_keeps_the_primary_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnshape.memory_run

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(cnnshape.memory_run, "run_memory", broken)
    r = record(inference_memory="1GiB")
    assert r.status == "error" and r.error_kind == "exception"
    assert r.error is not None and "memory analysis failed" in r.error and "simulated failure" in r.error
    # 4 · (8·8·9 + 8) = 2,336 parameters, counted all the same
    assert r.total("params") == 2_336 and r.outputs == (SHAPE,)


def test_memory_survives_the_results_file() -> None:
    r = record(inference_memory=PEAK)
    again = ScanRecord.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.memory == r.memory == (("inference_memory", PEAK),) and again.to_dict() == r.to_dict()


def test_table_and_csv_show_the_peaks_only_when_the_analysis_ran() -> None:
    over, plain = record(inference_memory=PEAK - 1), record(params=10**6)
    rows = list(csv.DictReader(io.StringIO(render_csv([over, plain]))))
    assert rows[0]["inference_memory"] == str(PEAK) and rows[1]["inference_memory"] == ""
    assert "inference_memory" not in render_csv([plain])  # a scan without memory budgets: the columns as before
    table = render_table([over, plain])
    header, _, first, second = table.splitlines()[:4]
    assert "inference peak" in header and binary_bytes(PEAK) in first and "inference peak" not in render_table([plain])
    # the violation in bytes, not as a count
    assert f"inference peak memory {binary_bytes(PEAK)} > {binary_bytes(PEAK - 1)}" in first


def test_unknown_figure_names_the_memory_ones() -> None:
    with pytest.raises(ConfigError, match="inference_memory, train_memory"):
        budgets_from({"peak": "1GiB"})


CHAIN = """\
from torch import nn


class Chain(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(4)])
"""


@pytest.mark.slow  # a worker process importing torch
def test_cli_flags(tmp_path: Path) -> None:
    (tmp_path / "chain.py").write_text(CHAIN)
    out = tmp_path / "r.jsonl"
    result = CliRunner().invoke(app, ["scan", f"{tmp_path / 'chain.py'}:Chain", "-i", "2,8,16,16", "-j", "1",
                                      "-o", str(out), "--max-inference-memory", f"{PEAK - 1}B",
                                      "--max-train-memory", "64MiB"])
    assert result.exit_code == 1, result.output
    (line,) = out.read_text().splitlines()
    data = json.loads(line)
    assert data["status"] == "fail" and data["memory"]["inference_memory"] == PEAK
    assert [v["figure"] for v in data["violations"]] == ["inference_memory"]
    assert data["memory"]["train_memory"] <= 64 * 2**20
