"""One training step without running the model: the forward and the backward of the summed
outputs run on meta tensors (no data, no arithmetic), autograd deciding what it saves and when it
frees; the optimizer's state and temporaries come from :mod:`.optim`.

The tensors autograd saves are taken from autograd itself (``saved_tensors_hooks``), each storage
once; what is alive at each moment is tracked per storage (:class:`.storages.LiveStorages`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ...inputs import InputSpec
from ...trace.meta import call_forward, make_inputs, module_tensors, tensors_in
from ...trace.values import open_distributions
from .amp import autocast, on_fake_cpu
from .optim import scalar_state_bytes, step_multiple
from .records import OPTIMIZER_STATE, TrainingMemory
from .storages import LiveStorages, storage_bytes, storage_key


@dataclass
class StepFigures:
    """What one forward and backward showed (on meta, or measured on a real device)."""

    saved_bytes: int
    forward_end_bytes: int
    forward_peak_bytes: int
    backward_peak_bytes: int
    after_backward_bytes: int


@contextlib.contextmanager
def saving(resident: set[int], saved: dict[int, int]) -> Iterator[None]:
    """Record into ``saved`` (identity -> bytes) every storage autograd packs for backward,
    except the ``resident`` ones (weights, inputs)."""
    def pack(t: torch.Tensor) -> torch.Tensor:
        key = storage_key(t)
        if key not in resident:
            saved[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


def loss_of(out: object) -> torch.Tensor | None:
    """The summed floating outputs that need a gradient: what the step differentiates."""
    outs = [t for t in tensors_in(open_distributions(out)) if t.requires_grad and t.is_floating_point()]
    if not outs:
        return None
    loss = outs[0].float().sum()
    for t in outs[1:]:
        loss = loss + t.float().sum()
    return loss


def forward_backward(model: nn.Module, inputs: list[torch.Tensor],
                     autocast: contextlib.AbstractContextManager[object], tracker: LiveStorages,
                     step: Callable[[], object] | None = None) -> StepFigures:
    """Run forward, the loss and backward on ``inputs`` under ``tracker``, then ``step`` (the
    optimizer's) while the outputs and the loss are still held, as a training loop's locals hold
    them; ``model`` is in train mode with its gradients cleared (``None``). Works alike on meta
    and on real devices."""
    weights = module_tensors(model)
    resident = {storage_key(t) for t in [*weights, *inputs]}
    saved: dict[int, int] = {}
    tracker.hold([*weights, *inputs])
    with torch.enable_grad(), tracker:
        with saving(resident, saved), autocast:
            out = call_forward(model, inputs)
        forward_end = tracker.now()
        forward_peak = tracker.peak
        loss = loss_of(out)
        if loss is not None:
            loss.backward()
        after, backward_peak = tracker.now(), tracker.peak
        if step is not None:
            step()
    figures = StepFigures(sum(saved.values()), forward_end, forward_peak, backward_peak, after)
    del out, loss
    return figures


def training_memory(model: nn.Module, specs: tuple[InputSpec, ...], optimizer: str,
                    amp: str | None = None) -> TrainingMemory:
    """``model`` already on meta, in train mode, its parameters' ``requires_grad`` as the user set;
    ``amp``: the forward under autocast."""
    with on_fake_cpu(model) if amp else contextlib.nullcontext():
        return _training(model, specs, optimizer, amp)


def _training(model: nn.Module, specs: tuple[InputSpec, ...], optimizer: str, amp: str | None) -> TrainingMemory:
    inputs = make_inputs(specs, "cpu" if amp else "meta")
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:
        p.grad = None
    try:
        figures = forward_backward(model, inputs, autocast(amp), LiveStorages())
    finally:
        for p in trainable:
            p.grad = None
    grads = storage_bytes(trainable)
    grad_bytes = sum(grads.values())
    state = OPTIMIZER_STATE[optimizer] * grad_bytes + scalar_state_bytes(optimizer) * len(grads)
    largest = max(grads.values(), default=0)
    transient = round(step_multiple(optimizer) * largest)
    step = figures.after_backward_bytes + transient
    peak = max(figures.backward_peak_bytes, step)
    phase = ("optimizer step" if step > figures.backward_peak_bytes
             else "backward" if figures.backward_peak_bytes > figures.forward_peak_bytes else "forward")
    weights = storage_bytes(module_tensors(model))
    return TrainingMemory(
        optimizer=optimizer, weight_bytes=sum(weights.values()),
        input_bytes=sum(v for k, v in storage_bytes(inputs).items() if k not in weights),
        gradient_bytes=grad_bytes, optimizer_state_bytes=state, saved_bytes=figures.saved_bytes,
        forward_end_bytes=figures.forward_end_bytes, backward_peak_bytes=figures.backward_peak_bytes,
        step_transient_bytes=transient, step_peak_bytes=state + step, peak_bytes=state + peak, peak_phase=phase,
    )
