"""The pruned model on meta: a copy whose module tensors have the kept channels' sizes and whose
layers' hyper-parameters (``out_channels``, ``groups``, ``num_features``, ...) say so. The pipeline
then traces and analyses it like any model: the pruned figures are measured, not estimated."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..analyse.params import submodule

#: (layer, tensor, axis) -> how many entries that axis keeps
Sizes = dict[tuple[str, str, int], int]


def pruned_copy(model: nn.Module, sizes: Sizes) -> nn.Module:
    """A deep copy of ``model`` (already on meta) with each listed tensor axis cut to its size."""
    pruned = copy.deepcopy(model)
    homes: dict[int, list[tuple[nn.Module, str]]] = {}  # a tensor -> every module holding it (tied weights)
    for module in pruned.modules():
        for table in (module._parameters, module._buffers):
            for name, value in table.items():
                if value is not None:
                    homes.setdefault(id(value), []).append((module, name))
    by_layer: dict[str, dict[str, dict[int, int]]] = {}
    for (layer, tensor, axis), n in sizes.items():
        by_layer.setdefault(layer, {}).setdefault(tensor, {})[axis] = n
    for layer, tensors in by_layer.items():
        before, module = submodule(model, layer), submodule(pruned, layer)
        for name, axes in tensors.items():
            old = getattr(before, name)
            shape = [axes.get(i, d) for i, d in enumerate(old.shape)]
            new = torch.empty(shape, dtype=old.dtype, device="meta")
            value = nn.Parameter(new, old.requires_grad) if name in module._parameters else new
            for holder, key in homes.get(id(getattr(module, name)), [(module, name)]):
                if isinstance(value, nn.Parameter) and key in holder._parameters:
                    holder._parameters[key] = value  # one object in every holder: tied stays tied
                else:
                    holder._buffers[key] = value
    for path, module in pruned.named_modules():  # every layer, tied ones included, follows its tensors
        for cls, update in HYPER.items():
            if isinstance(module, cls):
                update(submodule(model, path), module)
                break
    return pruned


def _conv(before: Any, after: Any) -> None:
    w, groups = after.weight, before.groups
    if before.transposed:
        after.in_channels, after.out_channels = w.shape[0], w.shape[1] * groups
        return
    after.out_channels = w.shape[0]
    if groups > 1 and before.weight.shape[1] == 1:  # depthwise: groups follow
        m = before.out_channels // before.in_channels
        after.in_channels = after.groups = w.shape[0] // m
    else:
        after.in_channels = w.shape[1] * groups


def _linear(before: Any, after: Any) -> None:
    after.out_features, after.in_features = after.weight.shape


def _norm(before: Any, after: Any) -> None:
    vector = after.running_mean if after.running_mean is not None else after.weight
    if vector is not None:
        after.num_features = vector.shape[0]


def _group_norm(before: Any, after: Any) -> None:
    if after.weight is not None:
        after.num_channels = after.weight.shape[0]


def _layer_norm(before: Any, after: Any) -> None:
    if after.weight is not None:
        after.normalized_shape = (*after.normalized_shape[:-1], after.weight.shape[-1])


def _prelu(before: Any, after: Any) -> None:
    after.num_parameters = after.weight.shape[0]


#: module class -> how its hyper-parameters follow its new tensor shapes (first match wins)
HYPER: dict[type, Callable[[Any, Any], None]] = {
    nn.modules.conv._ConvNd: _conv,
    nn.Linear: _linear,
    nn.modules.batchnorm._NormBase: _norm,
    nn.GroupNorm: _group_norm,
    nn.LayerNorm: _layer_norm,
    nn.PReLU: _prelu,
}
