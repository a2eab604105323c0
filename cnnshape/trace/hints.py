"""What to do when a model fails on meta tensors for a reason that is not its shapes: an op torch
has no meta kernel for (sparse and quantized ops, most often), or inputs whose dtype the weights
do not accept. Each function returns a paragraph to add to the tracer's message, or None."""
from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import param
from ..inputs import InputSpec
from .dtypes import DtypeMismatch

#: torch's words when an op has no meta kernel, and the op they name
_NO_META = re.compile(r"(?:attempted to run this operator with Meta tensors|could not find the fake impl|"
                      r"Could not run '[\w:.]+' with arguments from the 'Meta' backend|no fake impl)", re.I)
_OP = re.compile(r"\b((?:aten|quantized|sparse|_quantized|prims)::[\w.]+)")
#: the boilerplate after torch's "no meta kernel" sentence (PT2 advice and a link), dropped from messages
_BOILERPLATE = re.compile(r"attempted to run this operator with Meta tensors, but there was no fake impl or Meta "
                          r"kernel registered\..*?(?:custom_ops_landing_page\.html|$)", re.S)


def shorten_no_meta(text: str) -> str:
    """``text`` with torch's advice on PT2 compilation cut from a "no meta kernel" message."""
    return _BOILERPLATE.sub("torch has no meta kernel for it", text)


def unsupported_on_meta(cause: BaseException | None) -> str | None:
    """The paragraph for an op without a meta kernel: what cannot run on meta, and what to do."""
    if not isinstance(cause, NotImplementedError) or not _NO_META.search(str(cause)):
        return None
    found = _OP.search(str(cause))
    op = found.group(1) if found else "this op"
    where = ("cnnshape runs forward on meta tensors, which have shapes but no data, and torch "
             f"{torch.__version__.split('+')[0]} has no meta kernel for {op}")
    if "quantiz" in op or "quantiz" in str(cause).lower():
        return (f"Quantized ops cannot be analysed: {where}. Analyse the float model, before "
                "quantization (torch.ao.quantization): its shapes and MACs are the quantized model's.")
    if "sparse" in op or "sparse" in str(cause).lower():
        return (f"Sparse tensors cannot be analysed: {where}. Analyse the dense equivalent (x for "
                "x.to_sparse(), torch.mm for torch.sparse.mm): its shapes and MACs are the same.")
    return (f"This op cannot be analysed: {where}. Register a meta implementation for it "
            "(torch.library.register_fake), or analyse a version of the model without it.")


def _weight_dtypes(model: nn.Module) -> list[torch.dtype]:
    return list(dict.fromkeys(t.dtype for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()))


def dtype_mismatch(cause: BaseException | None, model: nn.Module, specs: tuple[InputSpec, ...]) -> str | None:
    """The paragraph for inputs whose dtype the model's weights refuse: the same failure as for real
    (not a limit of the analysis), and how to give the inputs."""
    text = str(cause)
    if not isinstance(cause, DtypeMismatch) and not (isinstance(cause, RuntimeError) and (
            "should be the same" in text or "must have the same dtype" in text or "expected scalar type" in text)):
        return None
    weights = _weight_dtypes(model)
    if len(weights) != 1:
        return None
    weight = str(weights[0]).removeprefix("torch.")
    odd = [s for s in specs if s.dtype != weight]
    if not odd:
        return None
    spec = odd[0]
    given = ", ".join(sorted({s.dtype for s in odd}))
    sizes = ",".join(str(d) for d in spec.shape) + ("" if weight == "float32" else f":{weight}")
    fixed = sizes if spec.name is None else f"{spec.name}={sizes}"
    text = (f"The input {spec} is {given} but the model's weights are {weight}: the real model refuses this "
            f"too (torch checks dtypes on real devices; cnnshape does so on meta). Give the input in the "
            f"weights' dtype: {param('inputs')} {fixed}.")
    if torch.empty((), dtype=getattr(torch, spec.dtype)).is_floating_point():
        text += (f" To analyse the model in {spec.dtype}, convert its weights too (model.to(torch.{spec.dtype}) "
                 "and analyse that module with the Python API).")
    return text
