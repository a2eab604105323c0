"""A scan worker's record holds the report's figures without building the report (worker._primary,
pipeline.totals_of/outputs_of/unsupported_of): compared, in this process, with ``cnnshape.analyze``
on networks with several outputs, tied weights and ops without a formula, and with the columns
of the report's own layer rows; budgets are judged on those figures."""
from __future__ import annotations

import functools
import pickle
from typing import Any

import pytest
import torch
from torch import nn

import cnnshape
from cnnshape.inputs import normalise_inputs
from cnnshape.scanner.records import TOTALS
from cnnshape.scanner.settings import ScanSettings, budgets_from
from cnnshape.scanner.sources import Task
from cnnshape.scanner.worker import analyse_task
from examples import nas201
from examples.multi_io import DictOutputNet, TiedWeights


class TwoUnsupported(nn.Module):
    """An FFT, then QR twice: ops without a cost formula, QR listed first (more calls), against both
    the order of the graph and the alphabet."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, _ = torch.linalg.qr(torch.fft.fft2(self.conv(x)).real)
        q, _ = torch.linalg.qr(q)
        return q


SMALL_NAS = functools.partial(nas201.NAS201Network, nas201.arch_string(
    ("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "none", "nor_conv_1x1", "nor_conv_3x3")),
    channels=4, cells_per_stage=1)

CASES: list[tuple[str, Any, str]] = [
    ("nas201", SMALL_NAS, "1,3,32,32"),
    ("two-unsupported", TwoUnsupported, "1,1,6,6"),
    ("dict-outputs", DictOutputNet, "2,3,32,32"),
    ("tied", TiedWeights, "1,64"),
]


def _record(make: Any, inputs: str, **settings: Any) -> Any:
    task = Task("m", "m", normalise_inputs(inputs), payload=pickle.dumps(make))
    record = analyse_task(task, ScanSettings(minimum=False, **settings))
    assert record.status != "error", record.error
    return record


@pytest.mark.parametrize(("name", "make", "inputs"), CASES, ids=[c[0] for c in CASES])
def test_the_record_holds_the_reports_figures(name: str, make: Any, inputs: str) -> None:
    record = _record(make, inputs)
    report = cnnshape.analyze(make(), inputs)
    assert record.totals == tuple((key, getattr(report.totals, key)) for key in TOTALS)
    assert record.outputs == tuple(o.shape for o in report.outputs)
    assert record.unsupported_ops == tuple(u.op for u in report.unsupported)
    assert record.tracer == report.tracer
    # the totals against the report's layer rows, summed here
    assert report.totals.macs == sum(row.macs for row in report.layers)
    assert report.totals.flops == sum(row.flops for row in report.layers)
    assert report.totals.activation_bytes == sum(row.activation_bytes for row in report.layers)
    assert report.totals.complete == (not any(row.unsupported for row in report.layers))


def test_ops_without_a_formula_most_called_first() -> None:
    record = _record(TwoUnsupported, "1,1,6,6")
    assert record.unsupported_ops == ("aten.linalg_qr", "aten._fft_c2c")
    totals = dict(record.totals)
    assert totals["complete"] is False
    assert totals["macs"] == 2 * 4 * 4 * 9  # the conv still counted: 2 channels x 4x4 outputs x 3x3 window
    assert record.outputs == ((1, 2, 4, 4),)


def test_several_outputs_keep_their_order() -> None:
    # DictOutputNet returns {"logits": 2x10, "embedding": 2x128} (examples/multi_io.py)
    assert _record(DictOutputNet, "2,3,32,32").outputs == ((2, 10), (2, 128))


def test_budgets_are_judged_on_the_records_figures() -> None:
    params = dict(_record(SMALL_NAS, "1,3,32,32").totals)["params"]
    over = _record(SMALL_NAS, "1,3,32,32", budgets=budgets_from({"params": params - 1, "macs": "1G"}))
    assert over.status == "fail"
    assert [(v.figure, v.value, v.limit) for v in over.violations] == [("params", params, params - 1)]
    assert _record(SMALL_NAS, "1,3,32,32", budgets=budgets_from({"params": params})).status == "pass"


def test_the_minimum_is_the_summarys_across_networks_in_a_row() -> None:
    """The worker's minimum (minimum_sizes, its size-rule templates kept across the networks of this
    thread) is the summary's (analyse_sizes on the same trace, no templates kept), for networks in
    a row that share layers: NAS-201 cells, a 1-d dilated stack, a 3-d video net, non-square inputs."""
    from cnnshape.analyse.sizes import analyse_sizes
    from cnnshape.graph import build_graph
    from cnnshape.pipeline import on_meta
    from cnnshape.trace.tracers import trace
    from examples.conv3d import C3DSmall
    from examples.dilated import DilatedConv1dStack

    cells = [("nor_conv_3x3",) * 6, ("avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "none",
                                      "avg_pool_3x3")]
    nets = [(functools.partial(nas201.NAS201Network, nas201.arch_string(c), channels=4, cells_per_stage=2), size)
            for c in cells for size in ("1,3,32,32", "1,3,40,24")]
    nets += [(DilatedConv1dStack, "1,1,1600"), (C3DSmall, "1,3,16,56,56"), (SMALL_NAS, "1,3,36,32")]
    for make, inputs in nets:
        task = Task("m", "m", normalise_inputs(inputs), payload=pickle.dumps(make))
        record = analyse_task(task, ScanSettings())
        assert record.status != "error", record.error
        model = make()
        with on_meta(model):
            graph = build_graph(trace(model, normalise_inputs(inputs), "fx", ()), model)
            expected = tuple((a.symbol, a.minimum) for a in analyse_sizes(graph, "", symbolic=False).axes)
        assert record.minimum == expected and all(m is not None for _, m in expected), (make, inputs)
