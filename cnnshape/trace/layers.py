"""The common torch.nn layers, called without running their ``forward``.

A torch.nn layer's ``forward`` costs more on meta tensors than the ATen call it comes down to
(module call machinery, the functional wrapper's checks, the dispatch). For the layers CNNs are
made of, this module issues the same ATen calls directly, with the arguments the functional
wrapper would pass (trailing defaults dropped, as the dispatcher does), through
:func:`.kernels.run`. A layer in an unusual configuration (training-mode batch norm, unbatched
input, a padding mode, ...) returns ``None`` and runs its own ``forward``; the cross-check runs
the ``forward`` too and compares the recorded calls and outputs.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..registry import Registry

aten = torch.ops.aten

#: ``(func, args, kwargs)``: one ATen call, issued in order; the last one's result is the layer's.
#: ``PREVIOUS`` among the args stands for the result of the call before.
Call = tuple[Any, tuple[Any, ...], dict[str, Any]]
PREVIOUS = object()
#: ``layer(module, x) -> (calls, index of the output in the last call's result or None)``
Layer = Callable[[Any, torch.Tensor], "tuple[list[Call], int | None] | None"]
LAYERS: Registry[type, Layer] = Registry("layers")


def trimmed(func: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` without the trailing ones equal to the schema's defaults, as torch passes them."""
    schema = func._schema.arguments
    end = len(args)
    while end > 0 and schema[end - 1].has_default_value() and _same(args[end - 1], schema[end - 1].default_value):
        end -= 1
    return args[:end]


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return type(value) is type(default) and value == default


def _pair(value: Any, n: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value] * n


def _batched(x: Any, nd: int) -> bool:
    return isinstance(x, torch.Tensor) and x.dim() == nd + 2


def _conv(nd: int) -> Layer:
    def layer(m: nn.modules.conv._ConvNd, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
        if m.padding_mode != "zeros" or isinstance(m.padding, str) or not _batched(x, nd):
            return None
        args = (x, m.weight, m.bias, list(m.stride), list(m.padding), list(m.dilation), False, [0] * nd, m.groups)
        return [(aten.convolution.default, args, {})], None

    return layer


def _conv_transpose(nd: int) -> Layer:
    def layer(m: nn.modules.conv._ConvTransposeNd, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
        if m.padding_mode != "zeros" or not _batched(x, nd):
            return None
        args = (x, m.weight, m.bias, list(m.stride), list(m.padding), list(m.dilation), True,
                list(m.output_padding), m.groups)
        return [(aten.convolution.default, args, {})], None

    return layer


def _batch_norm(nd: int) -> Layer:
    """Eval mode with running statistics: torch allocates an empty byte "reserve" tensor, then
    calls native_batch_norm with training=False (training mode updates the statistics: not here)."""

    def layer(m: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
        if m.training or m.running_mean is None or m.running_var is None or not _batched(x, nd):
            return None
        momentum = 0.0 if m.momentum is None else m.momentum
        reserve = (aten.empty.memory_format, ([0],), {"dtype": torch.uint8, "layout": torch.strided,
                                                      "device": x.device})
        args = (x, m.weight, m.bias, m.running_mean, m.running_var, False, momentum, m.eps)
        return [reserve, (aten.native_batch_norm.default, args, {})], 0

    return layer


def _activation(name: str, *extra: Any) -> Layer:
    """``torch.nn`` activations: the op (in place when the layer says so) on the input."""
    def layer(m: nn.Module, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
        in_place = bool(getattr(m, "inplace", False))
        func = getattr(aten, f"{name}_" if in_place else name).default
        return [(func, trimmed(func, (x, *extra)), {})], None

    return layer


def _max_pool(nd: int) -> Layer:
    def layer(m: Any, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
        if m.return_indices or not _batched(x, nd):
            return None
        func = getattr(aten, f"max_pool{nd}d_with_indices").default
        stride = [] if m.stride is None else _pair(m.stride, nd)
        args = (x, _pair(m.kernel_size, nd), stride, _pair(m.padding, nd), _pair(m.dilation, nd), bool(m.ceil_mode))
        return [(func, trimmed(func, args), {})], 0

    return layer


def _avg_pool(nd: int) -> Layer:
    def layer(m: Any, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
        if not _batched(x, nd):
            return None
        func = getattr(aten, f"avg_pool{nd}d").default
        stride = [] if m.stride is None else _pair(m.stride, nd)
        args = (x, _pair(m.kernel_size, nd), stride, _pair(m.padding, nd), bool(m.ceil_mode),
                bool(m.count_include_pad), m.divisor_override)
        return [(func, trimmed(func, args), {})], None

    return layer


def _adaptive_avg_pool2d(m: nn.AdaptiveAvgPool2d, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
    """torch takes the mean over H and W for a 1x1 output, the pooling op otherwise."""
    if not _batched(x, 2):
        return None
    size = [x.shape[-2 + i] if s is None else s for i, s in enumerate(_pair(m.output_size, 2))]
    if size == [1, 1]:
        return [(aten.mean.dim, (x, [-1, -2], True), {})], None
    return [(aten._adaptive_avg_pool2d.default, (x, size), {})], None


def _flatten(m: nn.Flatten, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
    rank = x.dim()
    if rank == 0 or not x.is_contiguous():
        return None
    start, end = m.start_dim % rank, m.end_dim % rank
    if start >= end:
        return None
    shape = [*x.shape[:start], -1, *x.shape[end + 1:]]
    shape[start] = 1
    for d in x.shape[start:end + 1]:
        shape[start] *= d
    return [(aten.view.default, (x, shape), {})], None


def _linear(m: nn.Linear, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
    """A 2-d input with a bias: torch transposes the weight (a view) and calls addmm."""
    if m.bias is None or not isinstance(x, torch.Tensor) or x.dim() != 2:
        return None
    return [(aten.t.default, (m.weight,), {}), (aten.addmm.default, (m.bias, x, PREVIOUS), {})], None


def _identity(m: nn.Module, x: torch.Tensor) -> tuple[list[Call], int | None] | None:
    """Identity, and dropout in eval mode: the input itself, no ATen call."""
    if m.training and isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
        return None
    return [], None


for _nd, _conv_cls, _transposed_cls in ((1, nn.Conv1d, nn.ConvTranspose1d), (2, nn.Conv2d, nn.ConvTranspose2d),
                                        (3, nn.Conv3d, nn.ConvTranspose3d)):
    LAYERS.add(_conv(_nd), _conv_cls)
    LAYERS.add(_conv_transpose(_nd), _transposed_cls)
# BatchNorm1d takes (N, C) and (N, C, L): only the 2-d form is taken here (nd=0)
LAYERS.add(_batch_norm(0), nn.BatchNorm1d)
LAYERS.add(_batch_norm(2), nn.BatchNorm2d)
LAYERS.add(_batch_norm(3), nn.BatchNorm3d)
LAYERS.add(_max_pool(2), nn.MaxPool2d)
LAYERS.add(_max_pool(3), nn.MaxPool3d)
LAYERS.add(_avg_pool(2), nn.AvgPool2d)
LAYERS.add(_avg_pool(3), nn.AvgPool3d)
LAYERS.add(_adaptive_avg_pool2d, nn.AdaptiveAvgPool2d)
LAYERS.add(_flatten, nn.Flatten)
LAYERS.add(_linear, nn.Linear)
LAYERS.add(_identity, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Dropout3d)
LAYERS.add(_activation("relu"), nn.ReLU)
LAYERS.add(_activation("hardtanh", 0.0, 6.0), nn.ReLU6)
LAYERS.add(_activation("sigmoid"), nn.Sigmoid)
LAYERS.add(_activation("silu"), nn.SiLU)
LAYERS.add(_activation("hardswish"), nn.Hardswish)
LAYERS.add(_activation("hardsigmoid"), nn.Hardsigmoid)
LAYERS.add(_activation("tanh"), nn.Tanh)


_GLOBAL_HOOKS = (nn.modules.module._global_forward_hooks, nn.modules.module._global_forward_pre_hooks,
                 nn.modules.module._global_forward_hooks_always_called)


def plan(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[list[Call], int | None] | None:
    """The ATen calls ``module(*args, **kwargs)`` comes down to, when ``module`` is a plain
    torch.nn layer called plainly (exactly its class, no hooks, one tensor argument)."""
    layer = LAYERS.get(type(module))
    if layer is None or kwargs or len(args) != 1 or module._forward_hooks or module._forward_pre_hooks:
        return None
    if any(_GLOBAL_HOOKS):
        return None
    return layer(module, args[0])


def run(args: tuple[Any, ...], plan: tuple[list[Call], int | None]) -> Any:
    """Issue ``plan``'s calls (to whatever dispatch mode is active); the layer's output."""
    calls, index = plan
    result: Any = args[0]
    for func, call_args, call_kwargs in calls:
        result = func(*(result if a is PREVIOUS else a for a in call_args), **call_kwargs)
    return result[index] if calls and index is not None else result
