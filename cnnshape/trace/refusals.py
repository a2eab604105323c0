"""The size checks torch's real kernels make and its meta kernels skip.

On meta tensors a bilinear upsampling to 0 rows returns an empty tensor, a transposed conv whose
``output_padding`` is not below its stride or dilation returns a map, a padded conv over an empty
map returns a map: each gives an output, so a model whose real forward raises would pass the
analysis, or fail at a later layer that the empty or misshapen output reaches. The CPU and CUDA
kernels refuse each call (an empty transposed output, some CPU backends return instead: cnnshape
counts an empty layer output as a failure either way):

==========================================  ===============================================================
op                                          the real kernels refuse
==========================================  ===============================================================
``aten.convolution``                        unless the batch or the channels are 0: a spatial size 0 in the
                                            input; transposed, ``output_padding`` not below the stride or
                                            the dilation, or an output with a size below 1
``aten.upsample_*``, ``aten._upsample_*``   an input or an output with a size below 1 (every mode; torch's
                                            meta kernels check it for nearest and antialiased modes only)
==========================================  ===============================================================

:func:`check` raises :class:`SizeRefusal` for such a call, at the call itself, while the layer that
made it is known; its message gives the numbers and the fix, and the tracer names the layer
(:func:`.diagnose.explain`). Only for meta tensors: a ``--verify`` pass runs torch's own kernels.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..arith import conv_transpose_out


class SizeRefusal(RuntimeError):
    """A call the real kernels refuse for its sizes. The message says why, with the numbers and the
    fix, without naming the layer."""


#: ``rule(args) -> why the real kernels refuse the call``, or None; ``args`` with trailing defaults
Rule = Callable[[tuple[Any, ...]], "str | None"]


def _text(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _per_axis(value: Any, n: int) -> tuple[int, ...] | None:
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value) and len(value) in (1, n):
        return tuple(value) * (n if len(value) == 1 else 1)
    return None


def _empty_input(x: torch.Tensor, nd: int) -> str | None:
    """torch's "Only zero batch or zero channel inputs are supported": a spatial size 0."""
    for axis, w in enumerate(x.shape[-nd:]):
        if w == 0:
            return (f"its input is empty along spatial axis {axis} (size 0), which torch refuses in a real "
                    "forward (only the batch or the channels may be 0). Fix the layer that produces it.")
    return None


def _convolution(args: tuple[Any, ...]) -> str | None:
    if len(args) < 8:
        return None
    x, w, _, stride, padding, dilation, transposed, output_padding = args[:8]
    if not isinstance(w, torch.Tensor) or w.dim() < 3 or x.dim() != w.dim():
        return None
    nd = w.dim() - 2
    if x.shape[0] == 0 or x.shape[1] == 0:  # the real kernels return early, without checking the rest
        return None
    empty = _empty_input(x, nd)
    if empty is not None or not transposed:
        return empty
    per_axis = [_per_axis(v, nd) for v in (stride, padding, dilation, output_padding)]
    if any(v is None for v in per_axis):
        return None
    s, p, d, op = per_axis
    assert s is not None and p is not None and d is not None and op is not None
    for axis in range(nd):
        if op[axis] >= s[axis] and op[axis] >= d[axis]:
            return (f"output_padding={op[axis]} along spatial axis {axis} must be smaller than its stride "
                    f"({s[axis]}) or its dilation ({d[axis]}); torch refuses this in a real forward. Lower "
                    f"output_padding to at most {max(s[axis], d[axis]) - 1}.")
    kernel, spatial = w.shape[2:], x.shape[-nd:]
    out = [conv_transpose_out(*a) for a in zip(spatial, kernel, s, p, d, op)]
    for axis, size in enumerate(out):
        if size < 1:
            wi, k, si, pi, di, opi = spatial[axis], kernel[axis], s[axis], p[axis], d[axis], op[axis]
            rest = di * (k - 1) + opi
            need = 1 + -(-(2 * pi - rest) // si)  # the least W with (W − 1)·S ≥ 2P − D·(F − 1) − output_padding
            return (f"its output would be {_text(out)}, empty along spatial axis {axis}: (W−1)·S − 2P + D·(F−1) "
                    f"+ output_padding + 1 = ({wi}−1)·{si} − 2·{pi} + {di}·({k}−1) + {opi} + 1 = {size}; torch "
                    f"refuses this in a real forward. Use an input of at least {need} there, or padding at "
                    f"most {((wi - 1) * si + rest) // 2}.")
    return None


def _interpolation(mode: str, first_scale: int) -> Rule:
    """``upsample_<mode>(self, output_size, [align_corners,] *scales)``: scales from ``first_scale``."""
    def rule(args: tuple[Any, ...]) -> str | None:
        x, size = args[0], args[1]
        nd = len(size) if isinstance(size, (list, tuple)) else 0
        if nd == 0 or x.dim() < nd or not all(isinstance(o, int) for o in size):
            return None
        scales = args[first_scale:first_scale + nd]
        for axis, (w, o) in enumerate(zip(x.shape[-nd:], size)):
            if w < 1:
                return (f"{mode} upsampling receives an input that is empty along spatial axis {axis}, which "
                        "torch refuses in a real forward. Fix the layer that produces it.")
            if o >= 1:
                continue
            scale = scales[axis] if axis < len(scales) else None
            if isinstance(scale, float) and scale > 0:
                need = max(1, math.ceil(1 / scale))
                while math.floor(need * scale) < 1:
                    need += 1
                least = "1" if w == 1 else f"1/{w}"
                return (f"{mode} upsampling with scale_factor={scale:g} gives floor({w}·{scale:g}) = {o} pixels "
                        f"along spatial axis {axis}: an empty output ({_text(size)}), which torch refuses in a "
                        f"real forward. Use an input of at least {need} there, or a scale_factor of at least "
                        f"{least}.")
            return (f"{mode} upsampling to {_text(size)} is empty along spatial axis {axis}, which torch refuses "
                    "in a real forward. Give a size (or scale_factor) that leaves at least 1 pixel there.")
        return None
    return rule


RULES: dict[str, Rule] = {"aten.convolution.default": _convolution}
for _nd, _modes in ((1, ("linear",)), (2, ("bilinear", "bicubic")), (3, ("trilinear",))):
    for _mode in _modes:
        RULES[f"aten.upsample_{_mode}{_nd}d.default"] = _interpolation(_mode, 3)
        if _nd == 2:
            RULES[f"aten._upsample_{_mode}2d_aa.default"] = _interpolation(f"antialiased {_mode}", 3)
for _nd in (1, 2, 3):
    RULES[f"aten.upsample_nearest{_nd}d.default"] = _interpolation("nearest", 2)
    RULES[f"aten._upsample_nearest_exact{_nd}d.default"] = _interpolation("nearest-exact", 2)


def refuse(rules: dict[str, Callable[[tuple[Any, ...]], str | None]], op: str, args: tuple[Any, ...],
           error: type[RuntimeError]) -> None:
    """Raise ``error`` with the rule's reason when ``rules`` refuses ``op`` on meta tensors ``args``
    (the tables of this module and of :mod:`.dtypes` share it)."""
    rule = rules.get(op)
    if rule is None or len(args) < 2 or not isinstance(args[0], torch.Tensor) or not args[0].is_meta:
        return
    problem = rule(args)
    if problem is not None:
        raise error(problem)


def check(op: str, args: tuple[Any, ...]) -> None:
    """Raise :class:`SizeRefusal` when ``op`` on meta tensors ``args`` (trailing defaults put back)
    is a call the real kernels refuse for its sizes."""
    refuse(RULES, op, args, SizeRefusal)
