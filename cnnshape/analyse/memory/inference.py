"""The inference peak of one forward pass (eval mode, no grad), by liveness of the storages the
ATen calls read and write on meta tensors (:mod:`.liveness`)."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from ...inputs import InputSpec
from ...trace.meta import call_forward, make_inputs, module_tensors, tensors_in
from ...trace.values import open_distributions
from .amp import autocast, on_fake_cpu
from .liveness import inference_peak
from .records import InferenceMemory
from .storages import Layers, StorageRecorder, storage_bytes, storage_key


def inference_memory(model: nn.Module, specs: tuple[InputSpec, ...], amp: str | None = None) -> InferenceMemory:
    """``model`` already on meta and in the mode wanted (eval); ``amp``: under autocast."""
    with on_fake_cpu(model) if amp else contextlib.nullcontext():
        return _inference(model, specs, amp)


def _inference(model: nn.Module, specs: tuple[InputSpec, ...], amp: str | None) -> InferenceMemory:
    inputs = make_inputs(specs, "cpu" if amp else "meta")
    weights = storage_bytes(module_tensors(model))
    given = storage_bytes(inputs)
    layers = Layers(model)
    recorder = StorageRecorder(layers, plain=amp is not None)
    if amp:
        recorder.cacheable = {storage_key(p) for p in model.parameters() if p.requires_grad}
    with torch.no_grad(), layers.hooked(), recorder, autocast(amp):
        out = call_forward(model, inputs)
    accesses = recorder.close()
    outputs = {storage_key(t) for t in tensors_in(open_distributions(out))} | recorder.cached
    resident = {**weights, **given}
    return inference_peak(accesses, resident, outputs, sum(weights.values()),
                          sum(v for k, v in given.items() if k not in weights))
