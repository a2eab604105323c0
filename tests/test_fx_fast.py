"""The fx tracer's shortcuts (trace/fx.py's ``_Tracer``) build the graph torch.fx builds; the
hyper-parameters a node shows (meta.py's ``module_attrs``) are those ``getattr`` reads.

``_Tracer`` answers ``create_arg`` for the common argument types before fx's own checks, and copies
fx's scope and module stack directly. A reference tracer with the same leaf rule and none of the
shortcuts (fx's own ``create_arg``, fx's ``Scope`` and ``OrderedDict``) must give the same graph:
the same nodes, arguments, names and module stacks, on every example model and on models that
reach fx's other argument paths (a parameter used directly, a tensor constant, a named tuple, a
dict, a dtype).
"""
from __future__ import annotations

import collections
from collections import OrderedDict
from typing import Any, NamedTuple

import pytest
import torch
from torch import nn
from torch.fx.proxy import Scope

from cnnshape.load import load_model
from cnnshape.trace.fx import _Tracer
from cnnshape.trace.meta import ATTR_NAMES, _plain, module_attrs

from .cases import EXAMPLES


class _Reference(_Tracer):
    """``_Tracer`` without its shortcuts."""

    def __init__(self) -> None:
        super().__init__(())
        self.scope = Scope("", None)
        self.module_stack = collections.OrderedDict()

    create_arg = torch.fx.Tracer.create_arg  # (no frame of this file on the stack: sources stay the model's)


def _described(tracer: _Tracer, model: nn.Module) -> list[tuple[Any, ...]]:
    """Each node; its source is the model's line or, for torch's containers, this line of this file."""
    graph = tracer.trace(model)
    return [(n.op, n.name, str(n.target), str(n.args), str(n.kwargs), [u.name for u in n.users],
             [i.name for i in n.all_input_nodes], type(n.args).__name__, type(n.kwargs).__name__,
             list((n.meta.get("nn_module_stack") or OrderedDict()).items()), n.meta.get("cnnshape_source"))
            for n in graph.nodes]


class Pair(NamedTuple):
    a: torch.Tensor
    b: int


class OtherPaths(nn.Module):
    """Arguments that take fx's own paths: a parameter and a buffer used directly, a tensor constant,
    a named tuple, a dict, a dtype, a slice, nested lists and tuples."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, 4, 1, 1))
        self.register_buffer("shift", torch.zeros(1, 4, 1, 1))
        self.constant = torch.ones(1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> Any:
        y = self.conv(x) * self.scale + self.shift
        y = y + self.constant
        z = torch.cat([y, (x, y)[0]], dim=1).to(torch.float32)
        pair = Pair(z, 2)
        return {"out": pair.a[:, :4], "both": [pair, (y, 1.5, None, "s")]}


@pytest.mark.parametrize("spec, args", [(e.spec, {}) for e in EXAMPLES]
                         + [("benchmarks/depth_models.py:residual", {"blocks": 3}), (f"{__file__}:OtherPaths", {})])
def test_the_graph_is_fxs_graph(spec: str, args: dict[str, int]) -> None:
    model = load_model(spec, args).module
    ours = _described(_Tracer(()), model)
    assert ours == _described(_Reference(), model)
    assert len(ours) > 2


def _attrs_by_getattr(module: nn.Module) -> tuple[tuple[str, Any], ...]:
    """Every name of ATTR_NAMES read with plain ``getattr``, kept when plain (the definition)."""
    out = []
    for name in ATTR_NAMES:
        value = getattr(module, name, None)
        if value is not None and _plain(value):
            out.append((name, tuple(value) if isinstance(value, list) else value))
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
        out.append(("bias", module.bias is not None))
    return tuple(out)


def test_module_attrs_reads_what_getattr_reads() -> None:
    with torch.device("meta"):
        layers = [nn.Conv2d(3, 8, (3, 5), stride=2, padding=1, bias=False),
                  nn.ConvTranspose1d(4, 2, 3, output_padding=1, stride=2), nn.Linear(3, 4), nn.BatchNorm1d(5),
                  nn.LayerNorm([4, 5]), nn.GroupNorm(2, 4), nn.Upsample(scale_factor=2.0, mode="bilinear"),
                  nn.PixelShuffle(2), nn.Embedding(10, 3), nn.MultiheadAttention(8, 2), nn.LSTM(4, 8, 2),
                  nn.Flatten(0, -1), nn.Softmax(dim=1), nn.AdaptiveAvgPool2d((2, None)),
                  nn.MaxPool2d(3, ceil_mode=True)]
        layers += [m for e in EXAMPLES[:12] for m in load_model(e.spec).module.modules()]
    assert len(layers) > 100
    for layer in layers:
        assert module_attrs(layer) == _attrs_by_getattr(layer), type(layer).__name__
