"""Turn an exception raised by one node into a message that names the layer, the numbers and the fix."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..arith import as_tuple, conv_out, conv_out_text, pool_out
from .records import Node, TensorMeta


@dataclass(frozen=True)
class Failure:
    """What is known about the node that failed."""

    name: str  #: qualified name ("features.3") or function description
    type: str  #: "Conv2d", "add", ...
    module: nn.Module | None
    inputs: tuple[TensorMeta, ...]
    producers: tuple[Node | None, ...]  #: the node each tensor input came from
    source: str | None  #: "file.py:12: code" of the call in the user's file


def describe_producer(node: Node | None) -> str:
    if node is None:
        return ""
    if node.kind == "input":
        return f" (the model input {node.name!r})"
    what = f"{node.type}"
    for key in ("out_channels", "out_features", "output_size"):
        value = node.attr(key)
        if value is not None:
            what += f", {key}={value}"
            break
    if node.kind in ("function", "method") and node.input_metas:
        what += f" of {node.input_metas[0]}"
    return f" (from {node.name!r}, {what})"


def _conv_like_text(f: Failure, module: nn.Module, x: TensorMeta) -> str | None:
    """Explain a conv/pool whose window does not fit, per spatial axis."""
    nd = len(x.shape) - 2
    if nd < 1:
        return None
    kernel = as_tuple(getattr(module, "kernel_size", 1), nd)
    stride = as_tuple(getattr(module, "stride", None) or kernel, nd)
    padding_attr = getattr(module, "padding", 0)
    if isinstance(padding_attr, str):
        return None
    padding = as_tuple(padding_attr, nd)
    dilation = as_tuple(getattr(module, "dilation", 1), nd)
    ceil_mode = bool(getattr(module, "ceil_mode", False))
    spatial = x.shape[-nd:]
    for axis, size in enumerate(spatial):
        k, s, p, d = kernel[axis], stride[axis], padding[axis], dilation[axis]
        out = pool_out(size, k, s, p, d, ceil_mode) if hasattr(module, "ceil_mode") else conv_out(size, k, s, p, d)
        if out < 1:
            need = d * (k - 1) + 1 - 2 * p
            return (
                f"{f.type} {f.name!r} receives {x}{describe_producer(f.producers[0])}, too small along "
                f"spatial axis {axis} (size {size}): the output size would be "
                f"{conv_out_text(size, k, s, p, d)}. It needs at least {max(need, 1)} there: "
                f"use a larger input or a smaller kernel/stride before this layer."
            )
    return None


def explain(f: Failure, exc: BaseException) -> str:
    """A one-paragraph explanation of why ``f`` failed."""
    module = f.module
    x = f.inputs[0] if f.inputs else None
    where = f"\n    called at {f.source}" if f.source else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if module is not None and x is not None:
        if isinstance(module, nn.Linear) and x.shape and x.shape[-1] != module.in_features:
            got = x.shape[-1]
            origin = describe_producer(f.producers[0])
            return (
                f"Linear {f.name!r} expects in_features={module.in_features} but receives {x}, whose last "
                f"dimension is {got}{origin}. For this input, set in_features={got}, or feed an input "
                f"whose flattened size here is {module.in_features}.{where}"
            )
        if isinstance(module, nn.modules.conv._ConvNd):
            nd = len(module.kernel_size)
            if len(x.shape) not in (nd + 1, nd + 2):
                return (
                    f"{f.type} {f.name!r} expects a {nd + 2}-d input (N, C, {'spatial, ' * nd}) or "
                    f"{nd + 1}-d without batch, but receives {len(x.shape)}-d {x}"
                    f"{describe_producer(f.producers[0])}.{where}"
                )
            channels = x.shape[-nd - 1]
            if channels != module.in_channels:
                producer = f.producers[0]
                if len(x.shape) == nd + 1 and producer is not None and producer.kind == "input":
                    # torch reads a (nd+1)-d input as unbatched (C, spatial...): the batch is missing
                    batched = ",".join(str(d) for d in (1, module.in_channels, *x.shape[1:]))
                    return (
                        f"{f.type} {f.name!r} expects {module.in_channels} input channels, but the model "
                        f"input {x} has {nd + 1} dimensions, which torch reads as unbatched "
                        f"(C={channels}, then {nd} spatial). A batch dimension is probably missing: "
                        f"e.g. --input {batched}.{where}"
                    )
                return (
                    f"{f.type} {f.name!r} expects {module.in_channels} input channels but receives "
                    f"{channels}{describe_producer(producer)}; its input is {x}. Set "
                    f"in_channels={channels}, or fix the layer that produces this input.{where}"
                )
        if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)) \
                and not isinstance(module, nn.modules.conv._ConvTransposeNd):
            text = _conv_like_text(f, module, x)
            if text:
                return text + where
    # each input with where it came from, so a size mismatch points at both sources
    shapes = ", ".join(f"{t}{describe_producer(p)}" for t, p in zip(f.inputs, f.producers)) or "no tensors"
    return f"{f.type} {f.name!r} failed on input {shapes}: {type(exc).__name__}: {first}{where}"
