"""The measured reference for the memory estimate: the real model run on a real device, every
storage the ATen calls make tracked from its allocation until no tensor uses it, the peak of the
bytes alive taken (:class:`~cnnshape.analyse.memory.storages.LiveStorages`), and on CUDA
``torch.cuda.max_memory_allocated`` beside it.

Used by the tests and by ``cnnshape memory --verify``. A training step here is what the estimate
models: a warm-up step first (the optimizer's state made), the gradients set to None, then one
step measured: forward, backward of the summed outputs, ``optimizer.step()``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .analyse.memory.amp import DTYPES
from .analyse.memory.optim import make_optimizer, state_tensors
from .analyse.memory.storages import LiveStorages
from .analyse.memory.training import forward_backward, loss_of
from .inputs import InputSpec
from .trace.meta import call_forward, module_tensors
from .verify import random_inputs


@dataclass(frozen=True)
class Measured:
    """Peak bytes alive (weights and inputs included) and, for a training step, the bytes
    autograd saved; ``cuda_peak_bytes``: ``torch.cuda.max_memory_allocated`` over the same run."""

    peak_bytes: int
    saved_bytes: int | None = None
    cuda_peak_bytes: int | None = None


def _autocast(device: torch.device, amp: str | None) -> contextlib.AbstractContextManager[Any]:
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[amp])


@contextlib.contextmanager
def _cuda_peak(device: torch.device, out: list[int]) -> Any:
    if device.type != "cuda":
        yield
        return
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    yield
    torch.cuda.synchronize(device)
    out.append(torch.cuda.max_memory_allocated(device))


def measure_inference(model: nn.Module, specs: tuple[InputSpec, ...], device: str = "cpu",
                      amp: str | None = None) -> Measured:
    """One forward pass of ``model`` (real weights, on ``device``) in eval mode without grad."""
    where = torch.device(device)
    model.eval()
    inputs = random_inputs(specs, where)
    tracker = LiveStorages()
    tracker.hold([*module_tensors(model), *inputs])
    cuda: list[int] = []
    with torch.no_grad(), _cuda_peak(where, cuda), tracker, _autocast(where, amp):
        out = call_forward(model, inputs)
    del out
    return Measured(tracker.peak, cuda_peak_bytes=cuda[0] if cuda else None)


def measure_training(model: nn.Module, specs: tuple[InputSpec, ...], optimizer: str, device: str = "cpu",
                     amp: str | None = None) -> Measured:
    """One training step of ``model`` at the optimizer's steady state (see the module's text)."""
    where = torch.device(device)
    model.train()
    inputs = random_inputs(specs, where)
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
    _step(model, inputs, opt, amp, where, LiveStorages())  # warm-up: makes the state
    tracker = LiveStorages()
    tracker.hold(state_tensors(opt) if opt else [])
    cuda: list[int] = []
    with _cuda_peak(where, cuda):
        saved = _step(model, inputs, opt, amp, where, tracker)
    return Measured(tracker.peak, saved, cuda[0] if cuda else None)


def _step(model: nn.Module, inputs: list[torch.Tensor], opt: torch.optim.Optimizer | None, amp: str | None,
          where: torch.device, tracker: LiveStorages) -> int:
    """One step under ``tracker`` (its peak covers the optimizer step); the saved bytes."""
    model.zero_grad(set_to_none=True)
    figures = forward_backward(model, inputs, _autocast(where, amp), tracker, opt.step if opt else None)
    model.zero_grad(set_to_none=True)
    return figures.saved_bytes


__all__ = ["Measured", "loss_of", "measure_inference", "measure_training"]
