"""FLOP formulas read ATen arguments by schema name (issue 12, item 4).

Reading them by position took another argument in three overloads whose schemas order them
differently from ``aten.convolution`` / ``native_batch_norm``: these calls pin the named reads.
"""
from __future__ import annotations

from cnnshape.analyse.flops import Cost, op_cost
from cnnshape.trace.records import OpCall, TensorMeta


def _meta(*shape: int) -> TensorMeta:
    return TensorMeta(tuple(shape), "float32", 4)


def _call(op: str, args: tuple, out: TensorMeta, overload: str = "default") -> Cost | None:
    return op_cost(OpCall(op, args, (), (out,), overload))


def test_mkldnn_convolution_groups_is_not_transposed() -> None:
    # mkldnn_convolution(self, weight, bias, padding, stride, dilation, groups): position 6 is
    # groups (1), which read as ``transposed`` made this a transposed conv counted over the input.
    # 3x3 s2 conv 8 -> 16 channels on 16x16: out 8x8; MACs = 8·8·16·8·3·3 = 73,728; bias 16·8·8
    cost = _call("aten.mkldnn_convolution",
                 (_meta(1, 8, 16, 16), _meta(16, 8, 3, 3), _meta(16), (1, 1), (2, 2), (1, 1), 1), _meta(1, 16, 8, 8))
    assert cost == Cost(73_728, 2 * 73_728 + 16 * 8 * 8)


def test_slow_conv2d_forward_bias_is_counted() -> None:
    # _slow_conv2d_forward(self, weight, kernel_size, bias, stride, padding): the bias is
    # argument 3, not 2 (kernel_size). 3x3 conv 4 -> 2 channels, 6x6 -> 4x4:
    # MACs = 4·4·2·4·3·3 = 1,152; FLOPs = 2·1,152 + 2·4·4 (bias)
    cost = _call("aten._slow_conv2d_forward",
                 (_meta(1, 4, 6, 6), _meta(2, 4, 3, 3), (3, 3), _meta(2), (1, 1), (0, 0)), _meta(1, 2, 4, 4))
    assert cost == Cost(1_152, 2 * 1_152 + 2 * 4 * 4)


def test_batch_norm_without_running_statistics_reads_training_by_name() -> None:
    # _native_batch_norm_legit.no_stats(input, weight, bias, training, momentum, eps): position 5
    # is eps. Evaluation mode (training=False) is a folded scale and shift: 2 per element
    x = _meta(2, 3, 4, 4)
    out = _call("aten._native_batch_norm_legit", (x, _meta(3), _meta(3), False, 0.1, 1e-5), x, "no_stats")
    assert out == Cost(0, 2 * x.numel)
    # training: mean 1 + variance 2 + normalise 2 + affine 2 per element
    out = _call("aten._native_batch_norm_legit", (x, _meta(3), _meta(3), True, 0.1, 1e-5), x, "no_stats")
    assert out == Cost(0, 7 * x.numel)


def test_norm_weight_by_name() -> None:
    # layer norm (input, normalized_shape, weight, bias, eps) and group norm (input, weight, bias,
    # N, C, HxW, group, eps): 5 per element, plus 2 with an affine weight
    x = _meta(2, 8, 4, 4)
    assert _call("aten.native_layer_norm", (x, (4,), _meta(4), _meta(4), 1e-5), x) == Cost(0, 7 * x.numel)
    assert _call("aten.native_layer_norm", (x, (4,), None, None, 1e-5), x) == Cost(0, 5 * x.numel)
    assert _call("aten.native_group_norm", (x, None, None, 2, 8, 16, 4, 1e-5), x) == Cost(0, 5 * x.numel)
