"""Turn an exception raised by one node into a message that names the layer, the numbers and the fix."""
from __future__ import annotations

import linecache
import os
import re
import traceback
from dataclasses import dataclass

from torch import nn

from ..arith import as_tuple, conv_out, conv_out_text, pool_out
from ..errors import param
from .records import Node, TensorMeta
from .refusals import SizeRefusal


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
    if isinstance(exc, SizeRefusal) and x is not None:  # the call's own numbers and fix (.refusals)
        return f"{f.type} {f.name!r} receives {x}{describe_producer(f.producers[0])}: {exc}{where}"
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
                        f"e.g. {param('inputs')} {batched}.{where}"
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


#: ATen ops whose output size is the number of elements that pass a test on the values
_VALUE_SIZED_OPS = frozenset({
    "nonzero", "argwhere", "masked_select", "_unique", "_unique2", "unique_dim", "unique_consecutive",
    "bincount", "repeat_interleave", "equal", "_local_scalar_dense",
})
_NO_META_KERNEL = re.compile(r"aten::(\w+): attempted to run this operator with Meta tensors")


def value_dependence(exc: BaseException) -> str | None:
    """What the forward did that needs tensor values, when that is why ``exc`` was raised on meta
    tensors; None when it failed for another reason."""
    text = str(exc)
    if "cannot be called on meta tensors" in text:  # Tensor.item(), behind bool()/int()/float()/if
        return ("reads a tensor's value into Python (an if/while on a tensor, bool(), int(), float(), "
                ".item(), .any()/.all() tested in Python)")
    if "Cannot copy out of meta tensor" in text:
        return "copies a tensor's values out (.tolist(), .cpu(), .numpy())"
    if "torch.nonzero()" in text and "data-independent" in text:
        return ("calls torch.nonzero (also behind torch.where(condition), argwhere and boolean-mask "
                "indexing x[mask]), whose output size is the number of non-zero values")
    if "repeat_interleave a meta tensor without output_size" in text:
        return "calls torch.repeat_interleave with tensor repeats, whose output size is their sum"
    match = _NO_META_KERNEL.search(text)
    if match and match.group(1) in _VALUE_SIZED_OPS:
        return f"calls aten.{match.group(1).lstrip('_')}, whose output size depends on the values"
    return None


_TORCHSCRIPT_FRAME = re.compile(r'File "(.+)", line (\d+), in ')


def from_torchscript(exc: BaseException) -> bool:
    """Whether ``exc`` was re-raised by TorchScript's interpreter (a scripted module failed)."""
    return "failed in the TorchScript interpreter" in str(exc)


def torchscript_source(exc: BaseException) -> str | None:
    """``"file:line: code"`` of the innermost frame of a TorchScript traceback in ``exc``'s message."""
    frames = _TORCHSCRIPT_FRAME.findall(str(exc))
    if not frames:
        return None
    filename, line = frames[-1]
    return f"{filename}:{line}: {linecache.getline(filename, int(line)).strip()}"


def in_distributions(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside torch.distributions (an argument check on values)."""
    return any(f"{os.sep}distributions{os.sep}" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def value_dependent_text(model: str, where: str, what: str, source: str | None, exc: BaseException) -> str:
    """Why a forward that needs tensor values cannot be analysed statically, and what to do.

    ``where`` names the layer or module whose code ran (" in 'head'", or ""); ``source`` is the
    user's line."""
    fix = ("Make that step independent of the values: branch on sizes (x.shape[-1] > 32: the eager "
           "tracer follows those) or on a flag set in __init__; give value-sized ops their size "
           "(torch.nonzero_static(x, size=k), torch.repeat_interleave(..., output_size=n)); or move "
           "value-dependent post-processing (thresholds, NMS, early exits) out of forward.")
    if in_distributions(exc):
        fix = ("A torch.distributions object checks its arguments' values when built with "
               "validate_args=True: build it with validate_args=False (cnnshape turns the default "
               "checks off while it traces). " + fix)
    at = f"\n    at {source}" if source else ""
    return (f"{model}.forward{where} needs tensor values: it {what}. Static analysis runs the model on "
            f"meta tensors, which have shapes but no values, so it cannot know which way a "
            f"value-dependent branch goes, what .item() returns or how many elements torch.nonzero "
            f"finds. {fix}{at}")
