"""The shape cross-check is keyed by ATen op, not by class name (issue 12, item 4).

A user's own module that shares a torch.nn class name gets no formula of that class, and a
functional call gets the same checks as the module that ends in the same op.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnshape
from cnnshape.analyse.shapes import check_shape, expected_shape
from cnnshape.errors import InternalError
from cnnshape.trace.records import Node, OpCall, TensorMeta


class Linear(nn.Module):
    """A user's class named like ``nn.Linear``: no ``out_features``, and it only doubles its input."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel_size = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


class UsesOwnLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = Linear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def test_a_class_named_like_a_torch_layer_gets_no_formula_of_that_layer() -> None:
    # as a leaf, keyed by class name it was given nn.Linear's (*, in) -> (*, out_features) and
    # reported "the size formula gives 1x3x8xNone" as a cnnshape bug; keyed by op (aten.mul) it
    # has no formula, and the shape is torch's: 1x3x8x8
    report = cnnshape.analyze(UsesOwnLinear(), [(1, 3, 8, 8)], leaves=[Linear])
    assert report.outputs[0].shape == (1, 3, 8, 8)


class FunctionalTranspose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, torch.ones(1, 1, 3, 3, device=x.device), stride=2, output_padding=2)


def test_functional_transposed_conv_gets_the_module_check() -> None:
    # output_padding 2 is not below the stride (2) nor the dilation (1): torch's real forward
    # rejects it, its meta kernel returns (4 − 1)·2 + 2 + 2 + 1 = 11 per axis
    with pytest.raises(RuntimeError):
        FunctionalTranspose()(torch.randn(1, 1, 4, 4))
    with pytest.raises(cnnshape.ShapeError,
                       match=r"conv_transpose2d 'conv_transpose2d' receives 1x1x4x4.*: output_padding=2.*stride \(2\)"):
        cnnshape.analyze(FunctionalTranspose(), [(1, 1, 4, 4)])


def _meta(*shape: int) -> TensorMeta:
    return TensorMeta(tuple(shape), "float32", 4)


def _node(op: str, args: tuple, out: TensorMeta, overload: str = "default") -> Node:
    call = OpCall(op, args, (), (out,), overload)
    return Node("layer", "module", "layer", "", "Layer", ("x",), (args[0],), (("", out),), (call,))


@pytest.mark.parametrize("node, shape", [
    # conv 3x3 s2 p1 on 15: floor((15 + 2 − 2 − 1)/2) + 1 = 8; 16 output channels
    (_node("aten.convolution", (_meta(1, 3, 15, 15), _meta(16, 3, 3, 3), None, (2, 2), (1, 1), (1, 1), False,
                                (0, 0), 1), _meta(1, 16, 8, 8)), (1, 16, 8, 8)),
    # transposed k4 s2 p1, groups 2 of weight (4, 3, 4, 4): (5 − 1)·2 − 2 + 3 + 0 + 1 = 10, 3·2 = 6 channels
    (_node("aten.convolution", (_meta(1, 4, 5, 5), _meta(4, 3, 4, 4), None, (2, 2), (1, 1), (1, 1), True,
                                (0, 0), 2), _meta(1, 6, 10, 10)), (1, 6, 10, 10)),
    # max-pool 3 s2 ceil_mode on 8: ceil((8 − 3)/2) + 1 = 4 (the last window starts at 6 < 8: kept)
    (_node("aten.max_pool2d_with_indices", (_meta(1, 2, 8, 8), (3, 3), (2, 2), (0, 0), (1, 1), True),
           _meta(1, 2, 4, 4)), (1, 2, 4, 4)),
    # nearest x1.5 by scale factor (the vec overload): floor(7·1.5) = 10
    (_node("aten.upsample_nearest2d", (_meta(1, 2, 7, 7), None, (1.5, 1.5)), _meta(1, 2, 10, 10), "vec"),
     (1, 2, 10, 10)),
    # Linear's product: (12 x 5)·(5 x 3)
    (_node("aten.mm", (_meta(12, 5), _meta(5, 3)), _meta(12, 3)), (12, 3)),
])
def test_formulas_by_op_read_arguments_by_name(node: Node, shape: tuple[int, ...]) -> None:
    assert expected_shape(node) == shape == check_shape(node)


def test_a_formula_disagreeing_with_torch_is_a_bug_report() -> None:
    wrong = _node("aten.max_pool2d_with_indices", (_meta(1, 2, 8, 8), (3, 3), (2, 2), (0, 0), (1, 1), False),
                  _meta(1, 2, 4, 4))  # floor((8 − 3)/2) + 1 = 3, not 4
    with pytest.raises(InternalError, match=r"for Layer 'layer' on input 1x2x8x8 the size formula gives 1x2x3x3 "
                                            r"but torch produced 1x2x4x4"):
        check_shape(wrong)
