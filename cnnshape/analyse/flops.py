"""MACs and FLOPs per ATen operation.

Conventions (docs/flops.md has the full table):

* **MACs** (multiply-accumulates) are counted for convolutions (every dimensionality, grouped,
  dilated, transposed), matrix products (mm, addmm, bmm, baddbmm, and therefore Linear, matmul,
  einsum) and attention. One MAC is one multiply plus one add. Biases are not MACs. This is the
  convention of torch's ``FlopCounterMode`` halved, the one published model tables use.
* **FLOPs** = 2·MACs for those ops, plus the bias add (1 per output element) where there is one,
  plus a per-element count for every other op, stated at its formula below.
* Data movement (views, copies, concatenation, padding, indexing, nearest upsampling) is free,
  and listed explicitly. Any op in neither table is *unsupported*: reported, never counted as 0.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod

from ..frozen import fast_init
from ..registry import Registry
from ..trace.records import OpCall, TensorMeta


@fast_init
@dataclass(frozen=True)
class Cost:
    macs: int = 0
    flops: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.flops + other.flops)


Formula = Callable[[OpCall], Cost]
FLOPS: Registry[str, Formula] = Registry("flops")


def _t(call: OpCall, *names: str) -> TensorMeta:
    """The tensor argument of ``call`` named by the first of ``names`` its schema has."""
    value = call.arg(*names)
    assert isinstance(value, TensorMeta), f"{call.op}: argument {names[0]!r} is not a tensor"
    return value


def _input(call: OpCall) -> TensorMeta:
    """The operand: ``self`` in most schemas, ``input`` in the convolution and norm ones."""
    return _t(call, "self", "input")


def _out(call: OpCall) -> TensorMeta:
    return call.outputs[0]


# --- ops with MACs --------------------------------------------------------------------------


@FLOPS.register("aten.convolution", "aten._convolution", "aten.cudnn_convolution",
                "aten.convolution_overrideable", "aten._slow_conv2d_forward",
                "aten.mkldnn_convolution", "aten.cudnn_convolution_transpose")
def conv(call: OpCall) -> Cost:
    """Each output element of a normal conv takes Cin/groups·prod(kernel) MACs, so
    MACs = N·prod(out spatial)·prod(weight shape). A transposed conv scatters each *input*
    element over Cout/groups·prod(kernel) outputs: MACs = N·prod(in spatial)·prod(weight shape).
    FLOPs = 2·MACs + one add per output element for the bias."""
    x, w, out = _input(call), _t(call, "weight"), _out(call)
    # cudnn_convolution_transpose has no ``transposed`` argument: it is one
    transposed = call.op == "aten.cudnn_convolution_transpose" or bool(call.arg("transposed", default=False))
    spatial = (x if transposed else out).shape[2:]
    macs = x.shape[0] * prod(spatial) * prod(w.shape)
    has_bias = isinstance(call.arg("bias"), TensorMeta)
    return Cost(macs, 2 * macs + (out.numel if has_bias else 0))


@FLOPS.register("aten.mm")
def mm(call: OpCall) -> Cost:
    """(m×k)·(k×n): m·n·k MACs."""
    a, b = _t(call, "self"), _t(call, "mat2")
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return Cost(macs, 2 * macs)


@FLOPS.register("aten.addmm")
def addmm(call: OpCall) -> Cost:
    """bias + (m×k)·(k×n): m·n·k MACs; FLOPs add one per output element for the bias."""
    a, b = _t(call, "mat1"), _t(call, "mat2")
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return Cost(macs, 2 * macs + _out(call).numel)


@FLOPS.register("aten.bmm")
def bmm(call: OpCall) -> Cost:
    """batch of (m×k)·(k×n): b·m·n·k MACs."""
    a, b = _t(call, "self"), _t(call, "mat2")
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return Cost(macs, 2 * macs)


@FLOPS.register("aten.baddbmm")
def baddbmm(call: OpCall) -> Cost:
    """bias + batched product: b·m·n·k MACs, plus one FLOP per output element for the add."""
    a, b = _t(call, "batch1"), _t(call, "batch2")
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return Cost(macs, 2 * macs + _out(call).numel)


@FLOPS.register("aten.mv", "aten.dot", "aten.vdot")
def mv(call: OpCall) -> Cost:
    """matrix·vector m·n MACs, vector·vector n MACs (torch's FlopCounterMode does not count these)."""
    macs = prod(_t(call, "self").shape)
    return Cost(macs, 2 * macs)


@FLOPS.register("aten._scaled_dot_product_efficient_attention",
                "aten._scaled_dot_product_flash_attention",
                "aten._scaled_dot_product_cudnn_attention",
                "aten._scaled_dot_product_flash_attention_for_cpu")
def sdpa(call: OpCall) -> Cost:
    """softmax(Q·Kᵀ)·V with Q (b,h,s_q,d), K (b,h,s_k,d), V (b,h,s_k,d_v):
    b·h·s_q·s_k·(d + d_v) MACs; FLOPs add the softmax at 3 per score."""
    q, k, v = _t(call, "query"), _t(call, "key"), _t(call, "value")
    *batch, s_q, d = q.shape
    s_k, d_v = k.shape[-2], v.shape[-1]
    scores = prod(batch) * s_q * s_k
    macs = scores * (d + d_v)
    return Cost(macs, 2 * macs + 3 * scores)


# --- per-element ops ------------------------------------------------------------------------


def per_element(flops_per_element: int, on: str = "output") -> Formula:
    """Factory: ``flops_per_element`` FLOPs for every element of the op's output (or first input)."""

    def formula(call: OpCall) -> Cost:
        meta = _out(call) if on == "output" else _input(call)
        return Cost(0, flops_per_element * meta.numel)

    formula.__doc__ = f"{flops_per_element} FLOP(s) per {on} element."
    return formula


def _with_inplace(*names: str) -> tuple[str, ...]:
    return tuple(n for name in names for n in (f"aten.{name}", f"aten.{name}_"))


# One evaluation of an element-wise function, whatever the function, is one FLOP.
FLOPS.add(per_element(1), *_with_inplace(
    "add", "sub", "mul", "div", "rsub", "neg", "abs", "reciprocal", "sqrt", "rsqrt", "pow",
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "erf", "erfc",
    "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "hardtanh", "elu", "selu", "celu", "gelu",
    "silu", "mish", "hardswish", "hardsigmoid", "softplus", "log_sigmoid_forward", "threshold",
    "clamp", "clamp_min", "clamp_max", "maximum", "minimum", "floor", "ceil", "round", "trunc",
    "sign", "sgn", "fmod", "remainder", "floor_divide", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_not", "logical_xor", "bitwise_and", "bitwise_or",
    "bitwise_not", "bitwise_xor", "masked_fill", "square", "atan", "asin", "acos", "sinh", "cosh",
))
FLOPS.add(per_element(1), "aten.where", "aten._prelu_kernel", "aten.native_dropout",
          "aten.bernoulli_", "aten.bernoulli", "aten.hardshrink", "aten.softshrink", "aten.glu",
          "aten.isnan", "aten.isinf", "aten.nan_to_num", "aten.lerp", "aten.lerp_")
# a*b + c (addcmul, addcdiv): two FLOPs per element.
FLOPS.add(per_element(2), *_with_inplace("addcmul", "addcdiv"))
# softmax: exponent, running sum, division: three per element.
FLOPS.add(per_element(3), "aten._softmax", "aten._log_softmax", "aten._safe_softmax",
          "aten.softmax", "aten.log_softmax")
# Reductions: one per input element.
FLOPS.add(per_element(1, on="input"), "aten.sum", "aten.mean", "aten.amax", "aten.amin",
          "aten.max", "aten.min", "aten.argmax", "aten.argmin", "aten.prod", "aten.any",
          "aten.all", "aten.cumsum", "aten.cumprod", "aten.logsumexp", "aten.norm",
          "aten.linalg_vector_norm", "aten.nansum", "aten.count_nonzero")
# Variance and standard deviation: subtract the mean, square, accumulate: three per input element.
FLOPS.add(per_element(3, on="input"), "aten.var", "aten.std", "aten.var_mean", "aten.std_mean")


@FLOPS.register("aten.native_batch_norm", "aten._native_batch_norm_legit",
                "aten._native_batch_norm_legit_no_training", "aten.cudnn_batch_norm",
                "aten.miopen_batch_norm", "aten._batch_norm_with_update",
                "aten._batch_norm_no_update")
def batch_norm(call: OpCall) -> Cost:
    """Inference (running statistics): scale and shift folded, 2 per element. Training
    (statistics of the batch): mean 1 + variance 2 + normalise 2, plus 2 for the affine."""
    x = _input(call)
    # _batch_norm_with_update always updates the statistics; the no_training/no_update ops never
    # do and have no ``training`` argument
    training = call.op == "aten._batch_norm_with_update" or bool(call.arg("training", default=False))
    if not training:
        return Cost(0, 2 * x.numel)
    affine = isinstance(call.arg("weight"), TensorMeta)
    return Cost(0, (5 + (2 if affine else 0)) * x.numel)


@FLOPS.register("aten.native_layer_norm", "aten.native_group_norm", "aten._fused_rms_norm")
def norm_with_statistics(call: OpCall) -> Cost:
    """Statistics computed on the fly: mean 1 + variance 2 + normalise 2 per element, plus 2 for
    the affine weight and bias when present."""
    x = _input(call)
    affine = isinstance(call.arg("weight"), TensorMeta)
    return Cost(0, (5 + (2 if affine else 0)) * x.numel)


def _window_pool(call: OpCall) -> Cost:
    """prod(kernel) FLOPs per output element (comparisons for max, additions for average)."""
    kernel = call.arg("kernel_size")
    nd = len(_out(call).shape) - 2 if len(_out(call).shape) > 2 else 1
    k = kernel if isinstance(kernel, tuple) else (kernel,)
    k = k * nd if len(k) == 1 else k
    return Cost(0, prod(int(v) for v in k) * _out(call).numel)


FLOPS.add(_window_pool, "aten.max_pool1d", "aten.max_pool2d", "aten.max_pool3d",
          "aten.max_pool1d_with_indices", "aten.max_pool2d_with_indices",
          "aten.max_pool3d_with_indices", "aten.avg_pool1d", "aten.avg_pool2d", "aten.avg_pool3d",
          "aten.mkldnn_max_pool2d", "aten.mkldnn_max_pool3d")
# Adaptive pooling: every input element is read into one window: one per input element.
FLOPS.add(per_element(1, on="input"), "aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool3d",
          "aten.adaptive_avg_pool1d", "aten.adaptive_max_pool1d", "aten.adaptive_max_pool2d",
          "aten.adaptive_max_pool3d", "aten.adaptive_avg_pool2d", "aten.adaptive_avg_pool3d")
# Interpolation: one multiply-add per tap: linear 2 taps, bilinear 4, trilinear 8, bicubic 16.
FLOPS.add(per_element(2), "aten.upsample_linear1d")
FLOPS.add(per_element(4), "aten.upsample_bilinear2d", "aten._upsample_bilinear2d_aa")
FLOPS.add(per_element(8), "aten.upsample_trilinear3d")
FLOPS.add(per_element(16), "aten.upsample_bicubic2d", "aten._upsample_bicubic2d_aa")


# --- free: data movement, creation, metadata ------------------------------------------------

FREE_OPS = (
    "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "t", "transpose",
    "permute", "expand", "expand_as", "view_as", "squeeze", "unsqueeze", "flatten", "unflatten",
    "slice", "select", "narrow", "split", "split_with_sizes", "unsafe_split", "chunk", "unbind",
    "cat", "stack", "hstack", "vstack", "clone", "contiguous", "detach", "alias", "lift_fresh",
    "lift_fresh_copy", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
    "zeros", "zeros_like", "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like",
    "new_full", "fill", "fill_", "zero_", "copy", "copy_", "_to_copy", "to", "arange", "linspace",
    "scalar_tensor", "_local_scalar_dense", "constant_pad_nd", "reflection_pad1d",
    "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "embedding", "index_select", "gather", "index", "index_put",
    "index_put_", "repeat", "repeat_interleave", "roll", "flip", "tril", "triu", "pixel_shuffle",
    "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle", "upsample_nearest1d",
    "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
    "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "uniform_", "normal_", "rand",
    "randn", "randint", "randperm", "masked_select", "nonzero", "topk", "sort",
    "argsort", "one_hot", "im2col", "col2im", "diagonal", "movedim", "tile", "resize_",
    "set_", "_assert_async", "_assert_tensor_metadata", "sym_size", "sym_stride", "sym_numel",
    "is_same_size", "is_nonzero", "_has_compatible_shallow_copy_type", "scatter", "scatter_",
    "slice_scatter", "select_scatter", "as_strided_scatter", "unfold",
    # in-place views: they change the tensor's metadata only
    "transpose_", "t_", "squeeze_", "unsqueeze_", "as_strided_", "detach_", "swapdims_", "swapaxes_",
    "view_as_real", "view_as_complex",
)


def _free(call: OpCall) -> Cost:
    """Data movement, creation and metadata: no arithmetic."""
    return Cost()


FLOPS.add(_free, *sorted({f"aten.{name}" for name in FREE_OPS}))


def op_cost(call: OpCall) -> Cost | None:
    """The cost of one ATen call, or ``None`` when no formula is registered for it."""
    formula = FLOPS.get(call.op)
    return None if formula is None else formula(call)
