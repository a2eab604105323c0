"""Recorded ATen calls read by argument name (``OpCall.arg``, bound with the overload the recorder
saw): each value is the one the Python call passed, whichever overload torch dispatched to and
however the value was passed."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnshape.trace.meta import OpRecorder


def recorded(fn, op):
    """The calls of ``op`` that running ``fn`` on meta tensors records."""
    recorder = OpRecorder()
    with recorder:
        fn(torch.empty(2, 64, 5, 7, device="meta"))
    calls = [c for c in recorder.take() if c.op == op]
    assert calls, op
    return calls[0]


@pytest.mark.parametrize("fn, op, name, value", [
    # a list of sizes: split_with_sizes(self, split_sizes, dim), not dim at position 1
    (lambda x: x.split([16, 16, 32], dim=1), "aten.split_with_sizes", "dim", 1),
    (lambda x: x.split([16, 16, 32], dim=1), "aten.split_with_sizes", "split_sizes", (16, 16, 32)),
    (lambda x: torch.split(x, [40, 24], 1), "aten.split_with_sizes", "dim", 1),
    # one size: split.Tensor(self, split_size, dim); chunk(2) on 64 channels is split_size 32
    (lambda x: x.split(3, dim=3), "aten.split", "dim", 3),
    (lambda x: x.chunk(2, dim=1), "aten.split", "dim", 1),
    (lambda x: x.chunk(2, dim=1), "aten.split", "split_size", 32),
    # defaults from the schema: split's dim=0, sum over every dim, keepdim False
    (lambda x: x.split(1), "aten.split", "dim", 0),
    (lambda x: x.sum(), "aten.sum", "dim", None),
    (lambda x: x.mean((2, 3)), "aten.mean", "keepdim", False),
    # keyword-only: var.correction(self, dim, *, correction, keepdim)
    (lambda x: x.var((2, 3), keepdim=True), "aten.var", "keepdim", True),
    (lambda x: x.var((2, 3), keepdim=True), "aten.var", "dim", (2, 3)),
    # linalg_vector_norm(self, ord, dim, keepdim): dim after ord
    (lambda x: torch.linalg.vector_norm(x, 2, dim=(2, 3)), "aten.linalg_vector_norm", "dim", (2, 3)),
    (lambda x: x.transpose(1, 2), "aten.transpose", "dim1", 2),
    (lambda x: F.max_pool2d(x, 3, 2), "aten.max_pool2d_with_indices", "stride", (2, 2)),
])
def test_argument_by_name(fn, op, name, value):
    assert recorded(fn, op).arg(name) == value


def test_names_that_differ_between_ops_and_absent_names():
    # constant_pad_nd(self, pad, value) and reflection_pad2d(self, padding)
    constant = recorded(lambda x: F.pad(x, (1, 2, 3, 4)), "aten.constant_pad_nd")
    reflect = recorded(lambda x: F.pad(x, (1, 2, 3, 4), mode="reflect"), "aten.reflection_pad2d")
    assert constant.arg("pad", "padding") == reflect.arg("pad", "padding") == (1, 2, 3, 4)
    # max.dim(self, dim, keepdim): no `other` (that is max.other, element-wise); every name bound
    call = recorded(lambda x: x.max(dim=1), "aten.max")
    assert call.arg("other", default="none") == "none"
    assert call.bound() == {"self": call.args[0], "dim": 1, "keepdim": False}
