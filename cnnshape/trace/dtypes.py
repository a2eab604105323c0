"""The dtype checks torch's real kernels make and its meta kernels skip.

On meta tensors ``aten.convolution`` takes a float16 input with float32 weights, ``aten.addmm``
multiplies Half by Float, batch norm normalises int64: each gives an output, so a model that fails
for real (``Input type (c10::Half) and bias type (float) should be the same``) would pass the
analysis. :func:`check` raises :class:`DtypeMismatch` where the CPU and CUDA kernels refuse the
call; only for meta tensors (a ``--verify`` pass runs torch's own kernels, which check).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .refusals import refuse


class DtypeMismatch(RuntimeError):
    """Tensors of dtypes a real kernel refuses together (torch's wording, as the real run gives)."""


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _convolution(args: tuple[Any, ...]) -> str | None:
    x, w, bias = args[0], args[1], args[2] if len(args) > 2 else None
    if isinstance(w, torch.Tensor) and w.dtype != x.dtype:
        return f"Input type ({_name(x.dtype)}) and weight type ({_name(w.dtype)}) should be the same"
    if isinstance(bias, torch.Tensor) and bias.dtype != x.dtype:
        return f"Input type ({_name(x.dtype)}) and bias type ({_name(bias.dtype)}) should be the same"
    return None


def _products(first: int) -> Callable[[tuple[Any, ...]], str | None]:
    """``mm(a, b)``, ``bmm``: ``args[first]`` and ``args[first + 1]``; ``addmm(bias, a, b)`` also the bias."""
    def rule(args: tuple[Any, ...]) -> str | None:
        a, b = args[first], args[first + 1] if len(args) > first + 1 else None
        if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
            return None
        if a.dtype != b.dtype:
            return f"mat1 and mat2 must have the same dtype, but got {_name(a.dtype)} and {_name(b.dtype)}"
        bias = args[0] if first == 1 else None
        if isinstance(bias, torch.Tensor) and bias.dtype != a.dtype:
            return f"self and mat2 must have the same dtype, but got {_name(bias.dtype)} and {_name(a.dtype)}"
        return None
    return rule


def _batch_norm(args: tuple[Any, ...]) -> str | None:
    """Not for an integer input; a float32 weight with a float16/bfloat16 input is the mixed
    precision torch accepts, any other pair of dtypes it refuses."""
    x, weight = args[0], args[1]
    if not x.dtype.is_floating_point:
        return f'"batch_norm" not implemented for {_name(x.dtype)!r}'
    if isinstance(weight, torch.Tensor) and weight.dtype != x.dtype and not (
            weight.dtype == torch.float32 and x.dtype in (torch.float16, torch.bfloat16)):
        return (f"mixed dtype: the input is {_name(x.dtype)} and the weight {_name(weight.dtype)}; "
                "all inputs must share the same dtype")
    return None


RULES: dict[str, Callable[[tuple[Any, ...]], str | None]] = {
    "aten.convolution.default": _convolution,
    "aten.mm.default": _products(0),
    "aten.bmm.default": _products(0),
    "aten.addmm.default": _products(1),
    "aten.baddbmm.default": _products(1),
    "aten.native_batch_norm.default": _batch_norm,
    "aten._native_batch_norm_legit.default": _batch_norm,
    "aten._native_batch_norm_legit_no_training.default": _batch_norm,
    "aten._native_batch_norm_legit.no_stats": _batch_norm,
}


def check(op: str, args: tuple[Any, ...]) -> None:
    """Raise :class:`DtypeMismatch` when ``op`` on meta tensors ``args`` is a call the real
    kernels refuse for its dtypes."""
    refuse(RULES, op, args, DtypeMismatch)
