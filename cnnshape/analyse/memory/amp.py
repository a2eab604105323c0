"""Mixed precision (``--amp bf16|fp16``): the forward runs under ``torch.autocast`` for real, so
the low-precision copies are the ones autocast makes (weights cast per op, and kept for the whole
forward while gradients are recorded: autocast's weight cache; activations of the ops it lists),
with fp32 master weights and gradients. Autocast does not act on meta tensors, so the model runs
on fake CPU tensors instead (``FakeTensorMode``: no data, no arithmetic, as on meta)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from .records import AMP_DTYPES

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(amp: str | None) -> contextlib.AbstractContextManager[Any]:
    if amp is None:
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp {amp!r}: one of {', '.join(AMP_DTYPES)}")
    return torch.autocast("cpu", dtype=DTYPES[amp])


@contextlib.contextmanager
def on_fake_cpu(model: nn.Module) -> Iterator[FakeTensorMode]:
    """``model``'s parameters and buffers replaced by fake CPU tensors like them (ties kept), under
    a fake-tensor mode that stays active; everything put back on exit."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    saved: list[tuple[dict[str, Any], str, Any]] = []
    memo: dict[int, torch.Tensor] = {}
    try:
        with mode:
            for m in model.modules():
                tables: tuple[dict[str, Any], ...] = (m._parameters, m._buffers)
                for table in tables:
                    for key, value in table.items():
                        if value is None:
                            continue
                        if id(value) not in memo:
                            fake = torch.empty(value.shape, dtype=value.dtype, device="cpu")
                            memo[id(value)] = (nn.Parameter(fake, value.requires_grad)
                                               if isinstance(value, nn.Parameter) else fake)
                        saved.append((table, key, value))
                        table[key] = memo[id(value)]
            yield mode
    finally:
        for table, key, value in saved:
            table[key] = value
