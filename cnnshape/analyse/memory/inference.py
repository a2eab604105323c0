"""The inference peak of one forward pass (eval mode, no grad), by liveness of the storages the
ATen calls read and write on meta tensors (:mod:`.liveness`)."""
from __future__ import annotations

import torch
from torch import nn

from ...inputs import InputSpec
from ...trace.meta import call_forward, make_inputs, module_tensors, tensors_in
from .liveness import inference_peak
from .records import InferenceMemory
from .storages import Layers, StorageRecorder, storage_bytes, storage_key


def inference_memory(model: nn.Module, specs: tuple[InputSpec, ...]) -> InferenceMemory:
    """``model`` already on meta and in the mode wanted (eval)."""
    inputs = make_inputs(specs)
    weights = storage_bytes(module_tensors(model))
    given = storage_bytes(inputs)
    layers = Layers(model)
    recorder = StorageRecorder(layers)
    with torch.no_grad(), layers.hooked(), recorder:
        out = call_forward(model, inputs)
    outputs = {storage_key(t) for t in tensors_in(out)}
    resident = {**weights, **given}
    return inference_peak(recorder.accesses, resident, outputs, sum(weights.values()),
                          sum(v for k, v in given.items() if k not in weights))
